package oldtest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// Message is one message as read back by Messages.
type Message struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
	Raw          []byte
}

// Address returns the full address of user ("bob" or "bob@example.test") and
// its password, or fails t if the fixture has no such user.
func (s *Server) Address(t testing.TB, user string) (addr, password string) {
	t.Helper()
	addr, password, err := s.lookup(user)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return addr, password
}

// fullAddress returns user ("bob" or "Bob@example.test") as the lower-case
// full address the fixture knows it by.
func fullAddress(user string) string {
	addr := strings.ToLower(user)
	if !strings.Contains(addr, "@") {
		addr += "@" + Domain
	}
	return addr
}

func (s *Server) lookup(user string) (string, string, error) {
	addr := fullAddress(user)
	p, ok := s.Users[addr]
	if !ok {
		return "", "", fmt.Errorf("oldtest: no user %q in this fixture", user)
	}
	return addr, p, nil
}

// MasterLogin returns the Dovecot master-user LOGIN name for user:
// "user@example.test*" + MasterUser (password: MasterPassword).
func (s *Server) MasterLogin(user string) string {
	return fullAddress(user) + "*" + s.MasterUser
}

// Dial opens a new plaintext IMAP connection to IMAPAddr logged in as user
// and closes it in t.Cleanup.
func (s *Server) Dial(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	c, err := s.dial(user)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) dial(user string) (*imapclient.Client, error) {
	addr, pass, err := s.lookup(user)
	if err != nil {
		return nil, err
	}
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		return nil, fmt.Errorf("oldtest: dial %s: %w", s.IMAPAddr, err)
	}
	if err := c.Login(addr, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("oldtest: login %s: %w", addr, err)
	}
	return c, nil
}

// withSession runs f on a cached logged-in session of user, redialing once if
// the cached one was cut (e.g. by WipeUser or Restart).
func (s *Server) withSession(user string, f func(c *imapclient.Client) error) error {
	addr, _, err := s.lookup(user)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("oldtest: server is stopped")
	}
	for attempt := 0; ; attempt++ {
		c := s.conns[addr]
		if c == nil || c.State() == imap.ConnStateLogout {
			if c != nil {
				c.Close()
			}
			if c, err = s.dial(addr); err != nil {
				return err
			}
			s.conns[addr] = c
		}
		err = f(c)
		if err == nil || attempt > 0 || c.State() != imap.ConnStateLogout {
			return err
		}
		delete(s.conns, addr)
		c.Close()
	}
}

// Append seeds one message into user's mailbox with IMAP APPEND (RFC 9051
// §6.3.12) and returns its UID. The mailbox (and its parents) is created and
// subscribed if missing. A zero date means "now"; flags are IMAP flags such
// as `\Seen` or keywords.
func (s *Server) Append(t testing.TB, user, mailbox string, flags []string, date time.Time, raw []byte) uint32 {
	t.Helper()
	uid, err := s.append(user, mailbox, flags, date, raw)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return uid
}

func (s *Server) append(user, mailbox string, flags []string, date time.Time, raw []byte) (uint32, error) {
	if s.Kind == Cyrus && needsCyrusSpool(raw) {
		return s.appendCyrusSpool(user, mailbox, flags, date, raw)
	}
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	var uid uint32
	err := s.withSession(user, func(c *imapclient.Client) error {
		for try := 0; ; try++ {
			cmd := c.Append(mailbox, int64(len(raw)), opts)
			_, werr := cmd.Write(raw)
			cerr := cmd.Close()
			data, err := cmd.Wait()
			if err == nil {
				err = errors.Join(werr, cerr)
			}
			var ierr *imap.Error
			if err != nil && try == 0 && errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeTryCreate {
				if err := createLocked(c, mailbox, true); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("oldtest: append to %q of %s: %w", mailbox, user, err)
			}
			if data == nil || data.UID == 0 {
				return fmt.Errorf("oldtest: append to %q of %s: server returned no APPENDUID", mailbox, user)
			}
			uid = uint32(data.UID)
			return nil
		}
	})
	return uid, err
}

func mailboxExists(c *imapclient.Client, name string) bool {
	l, err := c.List("", name, nil).Collect()
	return err == nil && len(l) == 1
}

// CreateMailbox creates user's mailbox name (parents too; names use the
// fixture's Separator). An existing mailbox is fine. subscribed sets its
// subscription (RFC 9051 §6.3.7), so an empty, unsubscribed folder is
// CreateMailbox(t, user, name, false).
func (s *Server) CreateMailbox(t testing.TB, user, name string, subscribed bool) {
	t.Helper()
	err := s.withSession(user, func(c *imapclient.Client) error {
		return createLocked(c, name, subscribed)
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
}

func createLocked(c *imapclient.Client, name string, subscribed bool) error {
	if err := c.Create(name, nil).Wait(); err != nil {
		var ierr *imap.Error
		// Cyrus says "NO Mailbox already exists" without [ALREADYEXISTS]
		if !errors.As(err, &ierr) || (ierr.Code != imap.ResponseCodeAlreadyExists && !mailboxExists(c, name)) {
			return fmt.Errorf("oldtest: create %q: %w", name, err)
		}
	}
	var err error
	if subscribed {
		err = c.Subscribe(name).Wait()
	} else {
		err = c.Unsubscribe(name).Wait()
		var ierr *imap.Error
		if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo {
			err = nil // was not subscribed
		}
	}
	if err != nil {
		return fmt.Errorf("oldtest: subscription of %q: %w", name, err)
	}
	return nil
}

// Mailboxes lists user's mailboxes with LIST "" "*" RETURN (SUBSCRIBED
// SPECIAL-USE) (RFC 5258, RFC 6154).
func (s *Server) Mailboxes(t testing.TB, user string) []*imap.ListData {
	t.Helper()
	var out []*imap.ListData
	err := s.withSession(user, func(c *imapclient.Client) error {
		var err error
		out, err = c.List("", "*", &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: true}).Collect()
		return err
	})
	if err != nil {
		t.Fatalf("oldtest: list mailboxes of %s: %v", user, err)
	}
	return out
}

// Messages reads back every message of user's mailbox in UID order: UID,
// flags (without \Recent), INTERNALDATE, RFC822.SIZE and the exact raw
// bytes (BODY.PEEK[]).
func (s *Server) Messages(t testing.TB, user, mailbox string) []Message {
	t.Helper()
	var out []Message
	err := s.withSession(user, func(c *imapclient.Client) error {
		sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		defer func() { _ = c.Unselect().Wait() }()
		if sel.NumMessages == 0 {
			return nil
		}
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{section},
		}).Collect()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			msg := Message{UID: uint32(m.UID), InternalDate: m.InternalDate, Size: m.RFC822Size,
				Raw: m.FindBodySection(section)}
			for _, f := range m.Flags {
				if strings.EqualFold(string(f), `\Recent`) { // session state, not message state
					continue
				}
				msg.Flags = append(msg.Flags, string(f))
			}
			out = append(out, msg)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("oldtest: read %q of %s: %v", mailbox, user, err)
	}
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
	return out
}

// WaitMessages waits until user's mailbox holds at least n messages (e.g.
// after SMTP delivery, which is asynchronous) and fails t after timeout.
func (s *Server) WaitMessages(t testing.TB, user, mailbox string, n uint32, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got uint32
	for {
		err := s.withSession(user, func(c *imapclient.Client) error {
			st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil {
				return err
			}
			got = *st.NumMessages
			return nil
		})
		var ierr *imap.Error
		if err != nil && !(errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo) {
			t.Fatalf("oldtest: status of %q of %s: %v", mailbox, user, err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			s.logTail(t)
			t.Fatalf("oldtest: %q of %s has %d messages after %v, want at least %d", mailbox, user, got, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WipeUser deletes all of user's mailboxes and messages and cuts the user's
// IMAP sessions; the user can log in again to an empty INBOX. Dovecot only.
func (s *Server) WipeUser(t testing.TB, user string) {
	t.Helper()
	s.needDovecot(t, "WipeUser")
	addr, _, err := s.lookup(user)
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[addr]; c != nil {
		c.Close()
		delete(s.conns, addr)
	}
	if err := s.runScript(30*time.Second, "wipe-user.sh", s.StateDir, addr); err != nil {
		t.Fatalf("%v", err)
	}
}

// SendMail submits raw over SMTP to SMTPAddr (no AUTH, as a relay on
// 127.0.0.0/8 would) and fails t if any recipient or the data is refused.
// Delivery is asynchronous: use WaitMessages.
func (s *Server) SendMail(t testing.TB, from string, to []string, raw []byte) {
	t.Helper()
	if s.SMTPAddr == "" {
		t.Fatalf("oldtest: SendMail needs Options.WithSMTP")
	}
	c, err := smtp.Dial(s.SMTPAddr)
	if err != nil {
		t.Fatalf("oldtest: dial SMTP %s: %v", s.SMTPAddr, err)
	}
	defer c.Close()
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		t.Fatalf("oldtest: send mail: %v", err)
	}
	_ = c.Quit()
}

// LogPath returns the path of the daemon log name ("dovecot.log" or
// "postfix.log") for debugging; Dovecot only.
func (s *Server) LogPath(name string) string {
	return s.StateDir + string(os.PathSeparator) + "log" + string(os.PathSeparator) + name
}
