package oldserver_test

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver"
)

// The POP3 client against Dovecot's POP3: STLS with the pinned
// certificate, a wrong password is ErrAuthFailed, UIDL and RETR give the
// listing and the exact bytes; a master user logs in too; the probe finds
// POP3 and counts the UIDLs.
func TestPOP3Live(t *testing.T) {
	srv := fixture(t)
	srv.RequirePOP3(t)
	const user = "carol@example.test"
	raw := []byte("Subject: pop3 live\r\n\r\n.dot line\r\nbody\r\n")
	srv.Append(t, "carol", "INBOX", nil, time.Now(), raw)
	s := settingsFor(t, srv, oldserver.TLSStartTLS)
	s.POP3Port, s.POP3TLS = port(t, srv.POP3Addr), oldserver.TLSStartTLS
	ctx := ctxFor(t, time.Minute)

	c, err := oldserver.DialPOP3(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, "wrong"); !errors.Is(err, oldserver.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	c.Close()
	c, err = oldserver.DialPOP3(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, srv.Users[user]); err != nil {
		t.Fatal(err)
	}
	list, err := c.UIDL(100)
	if err != nil || len(list) == 0 {
		t.Fatalf("UIDL: %v %v", list, err)
	}
	var got strings.Builder
	last := list[len(list)-1]
	if _, err := c.Retr(last.Num, &got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(raw) {
		t.Errorf("RETR = %q, want %q", got.String(), raw)
	}
	if err := c.Quit(); err != nil {
		t.Error(err)
	}

	// A master user logs in for the user (AUTH PLAIN with authzid).
	c, err = oldserver.DialPOP3(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoginMaster(s, user, srv.MasterUser, srv.MasterPassword); err != nil {
		t.Fatalf("master login: %v", err)
	}
	if l2, err := c.UIDL(100); err != nil || len(l2) != len(list) {
		t.Errorf("UIDL as master: %v %v", l2, err)
	}
	c.Close()

	res, err := oldserver.ProbeWith(ctx, s, user, srv.Users[user], nil)
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, res.Text())
	}
	if !res.POP3.LoggedIn || res.POP3.UIDLs != len(list) || res.POP3.Port != s.POP3Port {
		t.Errorf("probe POP3: %+v", res.POP3)
	}
}

// fakePOP3 serves one connection with the lines script gives for each
// command read, and returns its address.
func fakePOP3(t *testing.T, answer func(cmd string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "+OK hello\r\n")
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, answer(strings.TrimSpace(l))); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// A hostile or broken old POP3 gives errors wrapping ErrPOP3 (or
// ErrAuthFailed), bounded in memory, never a panic.
func TestPOP3Hostile(t *testing.T) {
	huge := strings.Repeat("x", 100<<10)
	cases := []struct {
		name   string
		answer func(string) string
		run    func(*oldserver.POP3Client) error
		want   error
	}{
		{"refused login", func(c string) string { return "-ERR [AUTH] no\r\n" },
			func(c *oldserver.POP3Client) error { return c.Login("a", "b") }, oldserver.ErrAuthFailed},
		{"not POP3", func(c string) string { return "HTTP/1.1 400 Bad\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.UIDL(10); return err }, oldserver.ErrPOP3},
		{"bad UIDL line", func(c string) string { return "+OK\r\n1 \x01bad\r\n.\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.UIDL(10); return err }, oldserver.ErrPOP3},
		{"UIDL too long", func(c string) string { return "+OK\r\n1 " + strings.Repeat("u", 71) + "\r\n.\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.UIDL(10); return err }, oldserver.ErrPOP3},
		{"too many UIDLs", func(c string) string { return "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.UIDL(2); return err }, oldserver.ErrPOP3},
		{"endless line", func(c string) string { return "+OK\r\n" + huge },
			func(c *oldserver.POP3Client) error { _, err := c.UIDL(10); return err }, oldserver.ErrPOP3},
		{"message too big", func(c string) string { return "+OK\r\n" + huge + "\r\n.\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.Retr(1, sha256.New(), 1000); return err }, oldserver.ErrPOP3},
		{"RETR refused", func(c string) string { return "-ERR no such message\r\n" },
			func(c *oldserver.POP3Client) error { _, err := c.Retr(1, io.Discard, 1000); return err }, oldserver.ErrPOP3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakePOP3(t, tc.answer)
			s := oldserver.DefaultSettings(oldserver.MustParseHost("127.0.0.1"))
			s.POP3Port, s.POP3TLS = port(t, addr), oldserver.TLSNone
			c, err := oldserver.DialPOP3(ctxFor(t, 10*time.Second), s, &oldserver.DialOptions{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := tc.run(c); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// RETR of a stuffed body un-stuffs it.
	addr := fakePOP3(t, func(string) string { return "+OK\r\n..a\r\nb\r\n.\r\n" })
	s := oldserver.DefaultSettings(oldserver.MustParseHost("127.0.0.1"))
	s.POP3Port, s.POP3TLS = port(t, addr), oldserver.TLSNone
	c, err := oldserver.DialPOP3(ctxFor(t, 10*time.Second), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	if _, err := c.Retr(1, &b, 100); err != nil || b.String() != ".a\r\nb\r\n" {
		t.Errorf("RETR = %q, %v", b.String(), err)
	}
}
