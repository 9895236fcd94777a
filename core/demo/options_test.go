package demo_test

import (
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailferry/core/demo"
)

func dial(t *testing.T, s *demo.Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func authFailed(err error, code imap.ResponseCode) bool {
	var ierr *imap.Error
	return errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && ierr.Code == code
}

// A master user logs in as any user, with LOGIN "user*master" or
// AUTHENTICATE PLAIN authzid=user authcid=master, as at Dovecot; its
// password alone is no account, and without MasterUser there is none.
func TestMasterUser(t *testing.T) {
	s := startDemo(t, &demo.Options{MasterUser: "migrator", MasterPassword: "Master-pw-1"})
	whoami := func(c *imapclient.Client) string {
		t.Helper()
		// bob's INBOX is the only one holding this message.
		n, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if *n.NumMessages == 1 {
			return "bob"
		}
		return "other"
	}
	cb := dial(t, s)
	if err := cb.Login("bob@example.test", password(t, s, "bob@example.test")).Wait(); err != nil {
		t.Fatal(err)
	}
	app := cb.Append("INBOX", 3, nil)
	app.Write([]byte("x\r\n"))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}

	c := dial(t, s)
	if err := c.Login("Bob@example.test*migrator", "Master-pw-1").Wait(); err != nil {
		t.Fatalf("master LOGIN: %v", err)
	}
	if who := whoami(c); who != "bob" {
		t.Errorf("master LOGIN logged in as %s", who)
	}
	c = dial(t, s)
	if err := c.Authenticate(sasl.NewPlainClient("bob@example.test", "migrator", "Master-pw-1")); err != nil {
		t.Fatalf("master AUTHENTICATE PLAIN: %v", err)
	}
	if who := whoami(c); who != "bob" {
		t.Errorf("master PLAIN logged in as %s", who)
	}
	// A user's own PLAIN works too.
	c = dial(t, s)
	if err := c.Authenticate(sasl.NewPlainClient("", "carol@example.test", password(t, s, "carol@example.test"))); err != nil {
		t.Fatalf("user AUTHENTICATE PLAIN: %v", err)
	}

	for _, tc := range []struct {
		name  string
		login func(c *imapclient.Client) error
		code  imap.ResponseCode
	}{
		{"wrong master password", func(c *imapclient.Client) error {
			return c.Login("bob@example.test*migrator", "nope").Wait()
		}, imap.ResponseCodeAuthenticationFailed},
		{"master for an unknown user", func(c *imapclient.Client) error {
			return c.Login("mallory@example.test*migrator", "Master-pw-1").Wait()
		}, imap.ResponseCodeAuthenticationFailed},
		{"master alone", func(c *imapclient.Client) error { return c.Login("migrator", "Master-pw-1").Wait() },
			imap.ResponseCodeAuthenticationFailed},
		{"a user acting for another", func(c *imapclient.Client) error {
			return c.Authenticate(sasl.NewPlainClient("bob@example.test", "carol@example.test", password(t, s, "carol@example.test")))
		}, imap.ResponseCodeAuthorizationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.login(dial(t, s)); !authFailed(err, tc.code) {
				t.Errorf("err %v, want NO [%s]", err, tc.code)
			}
		})
	}

	plain := startDemo(t, &demo.Options{})
	if err := dial(t, plain).Login("bob@example.test*migrator", "Master-pw-1").Wait(); !authFailed(err, imap.ResponseCodeAuthenticationFailed) {
		t.Errorf("master LOGIN without a master user: %v", err)
	}
	if _, err := demo.Start(t.Context(), &demo.Options{MasterUser: "m"}); err == nil {
		t.Error("a master user without a password was accepted")
	}
}

func TestLocalPartLogin(t *testing.T) {
	s := startDemo(t, &demo.Options{LocalPartLogin: true})
	if err := dial(t, s).Login("alice", password(t, s, "alice@example.test")).Wait(); err != nil {
		t.Errorf("local-part LOGIN: %v", err)
	}
	off := startDemo(t, &demo.Options{})
	if err := dial(t, off).Login("alice", password(t, off, "alice@example.test")).Wait(); !authFailed(err, imap.ResponseCodeAuthenticationFailed) {
		t.Errorf("local-part LOGIN without LocalPartLogin: %v", err)
	}
}

// With Delimiter '.', LIST, NAMESPACE, CREATE and RENAME use '.', as a
// Dovecot with the Maildir++ separator does.
func TestDotDelimiter(t *testing.T) {
	s := startDemo(t, &demo.Options{Delimiter: '.'})
	if s.Delimiter() != '.' {
		t.Fatalf("Delimiter() = %q", s.Delimiter())
	}
	c := dial(t, s)
	if err := c.Login("alice@example.test", password(t, s, "alice@example.test")).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Work.Projects.Deep", "Work.Notes", "a/b"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", name, err)
		}
	}
	if err := c.Create("ends/", nil).Wait(); err == nil {
		t.Error(`CREATE "ends/" succeeded (imapmemserver would store "ends")`)
	}
	if err := c.Rename("Work", "Job", nil).Wait(); err == nil {
		t.Error("RENAME of a \\Noselect parent succeeded")
	}
	if err := c.Rename("Work.Projects", "Job", nil).Wait(); err == nil {
		t.Error("RENAME of a \\Noselect parent succeeded")
	}
	if err := c.Create("Work.Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Work.Projects", "Job", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range boxes {
		if b.Delim != '.' {
			t.Errorf("%q: delimiter %q", b.Mailbox, b.Delim)
		}
		got[b.Mailbox] = true
	}
	for _, want := range []string{"INBOX", "Work", "Work.Notes", "Job", "Job.Deep", "a/b"} {
		if !got[want] {
			t.Errorf("LIST lacks %q: %v", want, got)
		}
	}
	if got["Work.Projects.Deep"] || got["a"] {
		t.Errorf("LIST = %v", got)
	}
	top, err := c.List("", "%", nil).Collect()
	if err != nil || len(top) != 4 { // INBOX, Job, Work, a/b
		t.Errorf("LIST %% = %d mailboxes, %v", len(top), err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '.' {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}
	if _, err := demo.Start(t.Context(), &demo.Options{Delimiter: '.', Seed: true}); err == nil {
		t.Error("the seed was accepted with '.'")
	}
	if _, err := demo.Start(t.Context(), &demo.Options{Delimiter: ':'}); err == nil {
		t.Error("delimiter ':' accepted")
	}
}
