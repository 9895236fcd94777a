package oldtest_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailferry/core/oldserver/oldtest"
)

// TestInProcessFixture: the in-process fixture does, over the wire, what
// TestFixture checks of Dovecot, but for what it documents it does not do
// (implicit TLS, WipeUser, Restart).
func TestInProcessFixture(t *testing.T) {
	for _, sep := range []rune{'/', '.'} {
		t.Run(fmt.Sprintf("sep=%c", sep), func(t *testing.T) {
			t.Parallel()
			srv := oldtest.StartInProcess(t, &oldtest.Options{Separator: sep, WithSMTP: true})
			if srv.Kind != oldtest.InProcess || srv.IMAPSAddr != "" || srv.StateDir != "" || len(srv.CertSHA256) != 64 {
				t.Fatalf("fixture %+v", srv)
			}
			date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
			name := "Archive" + string(sep) + "2019"
			uid := srv.Append(t, "alice", name, []string{string(imap.FlagSeen), "$Label1"}, date, msg("one"))
			uid2 := srv.Append(t, "alice@example.test", name, nil, time.Time{}, msg("two"))
			if uid != 1 || uid2 != 2 {
				t.Fatalf("UIDs %d, %d", uid, uid2)
			}
			got := srv.Messages(t, "alice", name)
			if len(got) != 2 || !bytes.Equal(got[0].Raw, msg("one")) || !got[0].InternalDate.Equal(date) ||
				strings.Join(got[0].Flags, " ") != `\Seen $Label1` {
				t.Fatalf("read back %+v", got)
			}
			if _, off := got[0].InternalDate.Zone(); off != -5*3600 {
				t.Errorf("INTERNALDATE zone %d", off)
			}
			srv.CreateMailbox(t, "alice", "Hidden"+string(sep)+"Empty", false)
			attrs := map[string]string{}
			for _, mb := range srv.Mailboxes(t, "alice") {
				if mb.Delim != sep {
					t.Errorf("mailbox %q delimiter %q", mb.Mailbox, mb.Delim)
				}
				attrs[mb.Mailbox] = fmt.Sprint(mb.Attrs)
			}
			if strings.Contains(attrs["Hidden"+string(sep)+"Empty"], `\Subscribed`) || !strings.Contains(attrs["Sent"], `\Sent`) ||
				!strings.Contains(attrs["Sent"], `\Subscribed`) || !strings.Contains(attrs[name], `\Subscribed`) ||
				!strings.Contains(attrs["Hidden"], `\Noselect`) {
				t.Errorf("LIST %v", attrs)
			}

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
			c3 := srv.Dial(t, "bob")
			c3.Logout().Wait()
			c4, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c4.Close()
			err = c4.Login("bob", "wrong").Wait()
			var ierr *imap.Error
			if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAuthenticationFailed {
				t.Fatalf("wrong password: err = %v, want AUTHENTICATIONFAILED", err)
			}
			if err := c4.Login("bob", "BobSecret1").Wait(); err != nil {
				t.Fatalf("login by local part: %v", err)
			}

			srv.SendMail(t, "sender@example.org", []string{"bob@example.test"}, msg("smtp"))
			srv.SendMail(t, "sender@example.org", []string{"someone@elsewhere.example"}, msg("relayed"))
			srv.WaitMessages(t, "bob", "INBOX", 1, 20*time.Second)
			srv.WaitMessages(t, "catchall", "INBOX", 1, 20*time.Second)

			if err := srv.Restart(); err == nil {
				t.Error("Restart of an in-process fixture succeeded")
			}
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// observe runs one script of seeding and reading against srv and returns
// what a migration would see, leaving out what may differ between IMAP
// servers: UIDVALIDITY, \Recent, the order of LIST and of flags,
// \HasChildren and \HasNoChildren (Dovecot sends them only when asked),
// \NonExistent for \Noselect (RFC 5258), and the zone of INTERNALDATE
// (Dovecot's Maildir keeps only the instant; the in-process one keeps the
// zone too).
func observe(t *testing.T, srv *oldtest.Server) string {
	sep := string(srv.Separator)
	var b strings.Builder
	list := func(when string) {
		fmt.Fprintf(&b, "LIST %s:\n", when)
		var lines []string
		for _, mb := range srv.Mailboxes(t, "carol") {
			var attrs []string
			for _, a := range mb.Attrs {
				switch x := strings.ToLower(string(a)); x {
				case `\haschildren`, `\hasnochildren`:
				case `\nonexistent`:
					attrs = append(attrs, `\noselect`)
				default:
					attrs = append(attrs, x)
				}
			}
			slices.Sort(attrs)
			lines = append(lines, fmt.Sprintf("  %q %q %v\n", mb.Mailbox, mb.Delim, attrs))
		}
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, ""))
	}
	list("fresh")
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600)}
	flags := [][]string{nil, {`\Seen`}, {`\Answered`, `\Flagged`, `$Forwarded`}, {`\Deleted`, `\Draft`, `Work`}, {`\seen`, `$MDNSent`, `CamelCase`}}
	folders := []string{"INBOX", "Données" + sep + "Été 2020", "日本語", "Sent"}
	for _, f := range folders[1:] {
		srv.CreateMailbox(t, "carol", f, true)
	}
	srv.CreateMailbox(t, "carol", "Unsubscribed", false)
	for i := 0; i < 12; i++ {
		raw := []byte(fmt.Sprintf("Subject: %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d — ÄÖÜ\r\n", i, i, i))
		if i%5 == 0 {
			raw = raw[:len(raw)-2] // no final CRLF
		}
		date := time.Date(2010+i, time.Month(1+i), 1+i, i, i, i, 0, zones[i%len(zones)]) // not in the future: Dovecot would take "now"
		uid := srv.Append(t, "carol", folders[i%len(folders)], flags[i%len(flags)], date, raw)
		fmt.Fprintf(&b, "APPEND %d to %q: UID %d\n", i, folders[i%len(folders)], uid)
	}
	list("seeded")
	for _, f := range append(folders, "Unsubscribed") {
		for _, m := range srv.Messages(t, "carol", f) {
			fl := slices.Clone(m.Flags)
			slices.Sort(fl)
			fmt.Fprintf(&b, "%q UID %d flags %v date %s size %d sha256 %x\n", f, m.UID, fl,
				m.InternalDate.UTC().Format(time.RFC3339), m.Size, sha256.Sum256(m.Raw))
		}
		c := srv.Dial(t, "carol")
		st, err := c.Status(f, &imap.StatusOptions{NumMessages: true, UIDNext: true, NumUnseen: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS %q: %v", f, err)
		}
		fmt.Fprintf(&b, "STATUS %q: %d messages, UIDNEXT %d, %d unseen\n", f, *st.NumMessages, st.UIDNext, *st.NumUnseen)
		c.Logout().Wait()
	}
	return b.String()
}

// TestInProcessSameAsDovecot runs one script against both fixtures and
// compares what they answer. It runs only where Dovecot runs (make test).
func TestInProcessSameAsDovecot(t *testing.T) {
	for _, sep := range []rune{'/', '.'} {
		t.Run(fmt.Sprintf("sep=%c", sep), func(t *testing.T) {
			t.Parallel()
			opts := &oldtest.Options{Separator: sep}
			dovecot := observe(t, oldtest.Start(t, opts))
			inproc := observe(t, oldtest.StartInProcess(t, opts))
			if dovecot != inproc {
				t.Errorf("the fixtures differ:\n--- dovecot\n%s\n--- inprocess\n%s", dovecot, inproc)
			}
		})
	}
}
