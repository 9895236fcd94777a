package oldtest_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailferry/core/oldserver/oldtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := oldtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func msg(subject string) []byte {
	return []byte("From: a@example.org\r\nTo: b@example.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\nbody of " + subject + "\r\n")
}

func TestFixture(t *testing.T) {
	for _, sep := range []rune{'/', '.'} {
		t.Run(fmt.Sprintf("sep=%c", sep), func(t *testing.T) {
			t.Parallel()
			srv := oldtest.Start(t, &oldtest.Options{Separator: sep, WithSMTP: true})

			for _, a := range []string{srv.IMAPAddr, srv.IMAPSAddr, srv.SMTPAddr, srv.SMTPSAddr} {
				if h, _, err := net.SplitHostPort(a); err != nil || h != "127.0.0.1" {
					t.Fatalf("address %q not on 127.0.0.1", a)
				}
			}
			if len(srv.CertSHA256) != 64 {
				t.Fatalf("CertSHA256 = %q", srv.CertSHA256)
			}

			date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
			name := "Archive" + string(sep) + "2019"
			uid := srv.Append(t, "alice", name, []string{string(imap.FlagSeen), "$Label1"}, date, msg("one"))
			if uid == 0 {
				t.Fatal("Append returned UID 0")
			}
			uid2 := srv.Append(t, "alice@example.test", name, nil, time.Time{}, msg("two"))
			if uid2 <= uid {
				t.Fatalf("second UID %d <= first %d", uid2, uid)
			}
			got := srv.Messages(t, "alice", name)
			if len(got) != 2 {
				t.Fatalf("read back %d messages, want 2", len(got))
			}
			if !bytes.Equal(got[0].Raw, msg("one")) || got[0].UID != uid {
				t.Errorf("message 1 = UID %d %q", got[0].UID, got[0].Raw)
			}
			if !got[0].InternalDate.Equal(date) {
				t.Errorf("INTERNALDATE = %v, want %v", got[0].InternalDate, date)
			}
			if strings.Join(got[0].Flags, " ") != `\Seen $Label1` {
				t.Errorf("flags = %q", got[0].Flags)
			}

			srv.CreateMailbox(t, "alice", "Hidden"+string(sep)+"Empty", false)
			srv.Append(t, "alice", "Entwürfe"+string(sep)+"Café", nil, time.Time{}, msg("utf7"))
			if got := srv.Messages(t, "alice", "Entwürfe"+string(sep)+"Café"); len(got) != 1 {
				t.Errorf("non-ASCII mailbox holds %d messages, want 1", len(got))
			}
			var sawHidden, sawSent, sawArchiveSub bool
			for _, mb := range srv.Mailboxes(t, "alice") {
				if mb.Delim != sep {
					t.Errorf("mailbox %q delimiter %q, want %q", mb.Mailbox, mb.Delim, sep)
				}
				attrs := fmt.Sprint(mb.Attrs)
				switch mb.Mailbox {
				case "Hidden" + string(sep) + "Empty":
					sawHidden = true
					if strings.Contains(attrs, `\Subscribed`) {
						t.Errorf("Hidden/Empty is subscribed: %v", attrs)
					}
				case "Sent":
					sawSent = strings.Contains(attrs, `\Sent`)
				case name:
					sawArchiveSub = strings.Contains(attrs, `\Subscribed`)
				}
			}
			if !sawHidden || !sawSent || !sawArchiveSub {
				t.Errorf("LIST: hidden folder %v, Sent with \\Sent %v, appended folder subscribed %v", sawHidden, sawSent, sawArchiveSub)
			}

			// master user: LOGIN user*master and AUTHENTICATE PLAIN with authzid
			c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Login(srv.MasterLogin("alice"), srv.MasterPassword).Wait(); err != nil {
				t.Fatalf("master LOGIN: %v", err)
			}
			if st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *st.NumMessages != 2 {
				t.Fatalf("master session sees %v messages (err %v), want 2", st, err)
			}
			c2, err := imapclient.DialStartTLS(srv.IMAPAddr, &imapclient.Options{TLSConfig: pinnedTLS(srv.CertSHA256)})
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			defer c2.Close()
			if err := c2.Authenticate(sasl.NewPlainClient("alice@example.test", srv.MasterUser, srv.MasterPassword)); err != nil {
				t.Fatalf("master AUTHENTICATE PLAIN: %v", err)
			}
			c3, err := imapclient.DialTLS(srv.IMAPSAddr, &imapclient.Options{TLSConfig: pinnedTLS(srv.CertSHA256)})
			if err != nil {
				t.Fatalf("implicit TLS: %v", err)
			}
			defer c3.Close()
			err = c3.Login("bob", "wrong").Wait()
			var ierr *imap.Error
			if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAuthenticationFailed {
				t.Fatalf("wrong password: err = %v, want AUTHENTICATIONFAILED", err)
			}
			c4, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c4.Close()
			if err := c4.Login("bob", "BobSecret1").Wait(); err != nil {
				t.Fatalf("login by local part: %v", err)
			}

			// SMTP from loopback without auth, to a user and to a foreign domain
			srv.SendMail(t, "sender@example.org", []string{"bob@example.test"}, msg("smtp"))
			srv.SendMail(t, "sender@example.org", []string{"someone@elsewhere.example"}, msg("relayed"))
			srv.WaitMessages(t, "bob", "INBOX", 1, 20*time.Second)
			srv.WaitMessages(t, "catchall", "INBOX", 1, 20*time.Second)
			in := srv.Messages(t, "catchall", "INBOX")
			if !bytes.Contains(in[0].Raw, []byte("catchall+someone=elsewhere.example@example.test")) {
				t.Errorf("catchall message lacks the rewritten recipient:\n%s", in[0].Raw)
			}

			srv.WipeUser(t, "alice")
			if n := len(srv.Mailboxes(t, "alice")); n > 6 {
				t.Errorf("after WipeUser alice has %d mailboxes", n)
			}
			if got := srv.Messages(t, "alice", "INBOX"); len(got) != 0 {
				t.Errorf("after WipeUser INBOX has %d messages", len(got))
			}
		})
	}
}

func TestRestartKeepsMail(t *testing.T) {
	t.Parallel()
	srv := oldtest.Start(t, &oldtest.Options{Users: map[string]string{"dora": "DoraSecret1"}})
	srv.Append(t, "dora", "INBOX", nil, time.Time{}, msg("kept"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages(t, "dora", "INBOX"); len(got) != 1 {
		t.Fatalf("after restart %d messages, want 1", len(got))
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.StateDir); !os.IsNotExist(err) {
		t.Errorf("state dir %s still there after Stop", srv.StateDir)
	}
	if _, err := net.DialTimeout("tcp", srv.IMAPAddr, time.Second); err == nil {
		t.Errorf("IMAP still listening after Stop")
	}
}

func TestShared(t *testing.T) {
	t.Parallel()
	a := oldtest.Shared(t, &oldtest.Options{Separator: '.'})
	b := oldtest.Shared(t, &oldtest.Options{Separator: '.', Users: oldtest.DefaultUsers()})
	if a != b {
		t.Fatal("Shared with equal options started two servers")
	}
	c := a.Dial(t, "carol")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestUnavailable(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no dovecot, no postfix
	_, err := oldtest.StartProcess(nil)
	if !errors.Is(err, oldtest.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []oldtest.Options{
		{Separator: ':'},
		{Users: map[string]string{"x@other.test": "p"}},
		{Users: map[string]string{"x": ""}},
		{Fsync: "sometimes"},
	} {
		if srv, err := oldtest.StartProcess(&o); err == nil {
			srv.Stop()
			t.Errorf("StartProcess(%+v) succeeded", o)
		}
	}
}
