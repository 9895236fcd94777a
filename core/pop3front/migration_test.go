package pop3front_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// oldUIDLs lists the UIDLs of user's maildrop on the old server's POP3,
// over raw lines (not Mailferry's own client).
func oldUIDLs(t *testing.T, addr, user, pass string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("old POP3: %v", err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	cmd := func(line string) {
		fmt.Fprintf(c, "%s\r\n", line)
		if l := read(); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("old POP3 %s: %q", strings.Fields(line)[0], l)
		}
	}
	read()
	cmd("USER " + user)
	cmd("PASS " + pass)
	cmd("UIDL")
	var out []string
	for l := read(); l != "."; l = read() {
		out = append(out, l)
	}
	cmd("QUIT")
	return out
}

// TestPOP3FirstLoginKeepsUIDLs is the acceptance test of POP3 logins of a
// migrating domain, against Dovecot with its POP3 and against the
// in-process old server (core/demo's POP3, no root needed): a wrong password
// creates nothing; a first POP3 login migrates the account; then, with
// Python's poplib, UIDL through Mailferry equals UIDL on the old server
// message for message, RETR gives the same bytes, TOP n 0 the header, and
// DELE then QUIT removes the message (also for IMAP).
func TestPOP3FirstLoginKeepsUIDLs(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		firstLoginKeepsUIDLs(t, oldtest.StartKind(t, kind, nil))
	})
}

func firstLoginKeepsUIDLs(t *testing.T, srv *oldtest.Server) {
	srv.RequirePOP3(t)
	const alice = "alice@example.test"
	pw := srv.Users[alice]
	date := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	msgs := [][]byte{
		[]byte("From: x@example.org\r\nSubject: first\r\nMessage-ID: <1@example.org>\r\n\r\nHello\r\n"),
		[]byte("From: y@example.org\r\nSubject: dots\r\nMessage-ID: <2@example.org>\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n"),
		[]byte("From: z@example.org\r\nSubject: same body\r\nMessage-ID: <3@example.org>\r\n\r\nHello\r\n"),
	}
	for _, m := range msgs {
		srv.Append(t, "alice", "INBOX", nil, date, m)
	}
	srv.Append(t, "alice", "Archive", nil, date, []byte("Subject: not in POP3\r\n\r\nx\r\n"))
	want := oldUIDLs(t, srv.POP3Addr, alice, pw)
	if len(want) != len(msgs) {
		t.Fatalf("old server UIDL lists %d messages, want %d", len(want), len(msgs))
	}

	e0 := newEnv(t, &envOpts{noAccount: true})
	mig, err := migrate.New(migrate.Options{Store: e0.st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mig.Close() })
	e := newEnv(t, &envOpts{noAccount: true, migrator: mig, store: e0.st})
	host, port, _ := net.SplitHostPort(srv.IMAPAddr)
	_, pport, _ := net.SplitHostPort(srv.POP3Addr)
	var p, pp int
	fmt.Sscan(port, &p)
	fmt.Sscan(pport, &pp)
	s := oldserver.Settings{Host: oldserver.MustParseHost(host), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
		POP3Port: pp, POP3TLS: oldserver.TLSNone, SMTPPort: 25, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, e.st, "example.test", &s, true); err != nil {
		t.Fatal(err)
	}

	// A wrong password: -ERR [AUTH], and nothing is created.
	c := e.dial()
	c.ok("USER " + alice)
	if r := c.cmd("PASS not-" + pw); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Fatalf("wrong password: %q", r)
	}
	if _, err := e.st.Account(ctx, alice); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a wrong password: account %v", err)
	}

	// The first login is answered at once, and migrates the account.
	c.ok("USER " + alice)
	start := time.Now()
	c.ok("PASS " + pw)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("first login took %v", d)
	} else {
		t.Logf("first POP3 login answered after %v", d)
	}
	c.ok("QUIT")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := mig.Wait(wctx, alice); err != nil {
		t.Fatalf("migration: %v", err)
	}
	t.Logf("account migrated (old UIDLs read, INBOX and Archive copied) %v after the first login", time.Since(start))
	kept, err := e.st.KeptUIDLs(ctx, mustAccount(t, e.st, alice).ID)
	if err != nil || len(kept) != len(msgs) {
		t.Fatalf("kept UIDLs: %v %v", kept, err)
	}

	PoplibRun(t, e.addr, alice, pw, false, msgs, want, 1)

	// DELE 1 and QUIT removed the first message, for IMAP too; the
	// others keep their UIDLs.
	ic := imapSelectInbox(t, e.imapAddr, alice, pw)
	if !strings.Contains(ic, "* 2 EXISTS") {
		t.Errorf("IMAP after POP3 DELE 1: %q", ic)
	}
	PoplibRun(t, e.addr, alice, pw, false, msgs[1:], []string{"1 " + uidlOf(want[1]), "2 " + uidlOf(want[2])}, 0)
}

func uidlOf(line string) string { _, u, _ := strings.Cut(line, " "); return u }

func mustAccount(t *testing.T, st *store.Store, address string) *store.Account {
	t.Helper()
	a, err := st.Account(context.Background(), address)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// imapSelectInbox logs in over IMAP and returns SELECT INBOX's answer.
func imapSelectInbox(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	var out strings.Builder
	until := func(tag string) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("IMAP: %v", err)
			}
			out.WriteString(l)
			if strings.HasPrefix(l, tag) {
				return
			}
		}
	}
	until("* OK")
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", user, pass)
	until("a ")
	fmt.Fprintf(c, "b SELECT INBOX\r\n")
	until("b ")
	return out.String()
}
