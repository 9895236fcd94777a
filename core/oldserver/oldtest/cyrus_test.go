package oldtest_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailferry/core/oldserver/oldtest"
)

// The Cyrus fixture holds and serves exactly what a migration must carry:
// NUL bytes (served as a literal8), bare LF, 8-bit headers, nested and
// non-ASCII folders, flags and keywords; users log in by full address or
// local part, master users by AUTHENTICATE PLAIN, Postfix delivers into it.
func TestCyrusFixture(t *testing.T) {
	for _, sep := range []rune{'/', '.'} {
		t.Run(fmt.Sprintf("sep=%c", sep), func(t *testing.T) {
			t.Parallel()
			srv := oldtest.StartKind(t, oldtest.Cyrus, &oldtest.Options{Separator: sep, WithSMTP: true})
			if srv.Kind != oldtest.Cyrus {
				t.Fatalf("kind %s", srv.Kind)
			}
			date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
			nul := []byte("Subject: nul\r\n\r\nhello\x00world\r\n")
			bareLF := []byte("Subject: bare\n\nline 1\nline 2\n")
			eight := []byte("Subject: Grüße\r\nFrom: Jürgen <j@example.test>\r\n\r\nbody\r\n")
			name := "Archive" + string(sep) + "2019"
			u1 := srv.Append(t, "alice", name, []string{`\Seen`, "$Label1"}, date, nul)
			u2 := srv.Append(t, "alice", name, []string{`\Flagged`, `\Answered`, "Custom"}, date, bareLF)
			u3 := srv.Append(t, "alice", name, []string{`\Draft`}, date, eight)
			if !(u1 < u2 && u2 < u3) {
				t.Fatalf("UIDs %d %d %d not increasing", u1, u2, u3)
			}
			got := srv.Messages(t, "alice", name)
			if len(got) != 3 {
				t.Fatalf("read back %d messages, want 3", len(got))
			}
			want := []struct {
				uid   uint32
				raw   []byte
				flags []string
			}{{u1, nul, []string{`$Label1`, `\Seen`}}, {u2, bareLF, []string{"Custom", `\Answered`, `\Flagged`}}, {u3, eight, []string{`\Draft`}}}
			for i, w := range want {
				m := got[i]
				slices.Sort(m.Flags)
				if m.UID != w.uid || !bytes.Equal(m.Raw, w.raw) || strings.Join(m.Flags, " ") != strings.Join(w.flags, " ") {
					t.Errorf("message %d = UID %d %q flags %q, want UID %d %q flags %q", i, m.UID, m.Raw, m.Flags, w.uid, w.raw, w.flags)
				}
				if !m.InternalDate.Equal(date) || m.Size != int64(len(w.raw)) {
					t.Errorf("message %d: INTERNALDATE %v size %d, want %v %d", i, m.InternalDate, m.Size, date, len(w.raw))
				}
			}

			nonASCII := "Entwürfe" + string(sep) + "Café"
			srv.Append(t, "alice", nonASCII, nil, time.Time{}, msg("utf7"))
			srv.CreateMailbox(t, "alice", "Hidden"+string(sep)+"Empty", false)
			var sawHidden, sawSent, sawNonASCII bool
			for _, mb := range srv.Mailboxes(t, "alice") {
				if mb.Delim != sep {
					t.Errorf("mailbox %q delimiter %q, want %q", mb.Mailbox, mb.Delim, sep)
				}
				attrs := strings.ToLower(fmt.Sprint(mb.Attrs))
				switch mb.Mailbox {
				case "Hidden" + string(sep) + "Empty":
					sawHidden = !strings.Contains(attrs, `\subscribed`)
				case "Sent":
					sawSent = strings.Contains(attrs, `\sent`) && strings.Contains(attrs, `\subscribed`)
				case nonASCII:
					sawNonASCII = true
				}
			}
			if !sawHidden || !sawSent || !sawNonASCII {
				t.Errorf("LIST: unsubscribed hidden folder %v, subscribed \\Sent %v, non-ASCII folder %v", sawHidden, sawSent, sawNonASCII)
			}

			// master user (a Cyrus proxy server): AUTHENTICATE PLAIN with authzid
			c, err := imapclient.DialStartTLS(srv.IMAPAddr, &imapclient.Options{TLSConfig: pinnedTLS(srv.CertSHA256)})
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			defer c.Close()
			if err := c.Authenticate(sasl.NewPlainClient("alice@example.test", srv.MasterUser, srv.MasterPassword)); err != nil {
				t.Fatalf("master AUTHENTICATE PLAIN: %v", err)
			}
			if st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *st.NumMessages != 3 {
				t.Fatalf("master session sees %v messages (err %v), want 3", st, err)
			}
			c3, err := imapclient.DialTLS(srv.IMAPSAddr, &imapclient.Options{TLSConfig: pinnedTLS(srv.CertSHA256)})
			if err != nil {
				t.Fatalf("implicit TLS: %v", err)
			}
			defer c3.Close()
			err = c3.Login("bob", "wrong").Wait()
			var ierr *imap.Error
			if !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo {
				t.Fatalf("wrong password: err = %v, want NO", err)
			}
			c4 := srv.Dial(t, "bob")
			if err := c4.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			c5, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c5.Close()
			if err := c5.Login("bob", "BobSecret1").Wait(); err != nil {
				t.Fatalf("login by local part: %v", err)
			}

			srv.SendMail(t, "sender@example.org", []string{"bob@example.test"}, msg("smtp"))
			srv.SendMail(t, "sender@example.org", []string{"someone@elsewhere.example"}, msg("relayed"))
			srv.WaitMessages(t, "bob", "INBOX", 1, 20*time.Second)
			srv.WaitMessages(t, "catchall", "INBOX", 1, 20*time.Second)

			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			if got := srv.Messages(t, "alice", name); len(got) != 3 || !bytes.Equal(got[0].Raw, nul) {
				t.Fatalf("after restart: %d messages", len(got))
			}
		})
	}
}

// A port another process took between the fixture's choice and Cyrus's
// bind (its master goes on without it) is not taken for Cyrus's: the start
// fails and is tried again on other ports, and the fixture's logins reach
// Cyrus. The other process here answers IMAP, refusing every login.
func TestCyrusPortTaken(t *testing.T) {
	ln := takenPort(t, "* OK not Cyrus", "NO not Cyrus", true)
	taken := ln.Addr().(*net.TCPAddr).Port
	first := true
	undo := oldtest.SetPickPorts(func(free []int) []int {
		if first {
			first = false
			free[0] = taken // the IMAP port
		}
		return free
	})
	defer undo()
	srv := oldtest.StartKind(t, oldtest.Cyrus, nil)
	if srv.IMAPAddr == ln.Addr().String() {
		t.Errorf("the fixture is up on %s, another process's port", srv.IMAPAddr)
	}
	if first {
		t.Fatal("the fixture did not pick its ports")
	}
	c := srv.Dial(t, "alice")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
}
