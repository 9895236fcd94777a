package demo_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/demo"
)

// The demo's POP3 shows the seeded INBOX read-only, with Dovecot-style
// UIDLs, refuses DELE and a wrong password, and ends an over-long line.
func TestPOP3(t *testing.T) {
	srv, err := demo.Start(context.Background(), &demo.Options{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u := srv.Users()[0]
	c, err := net.Dial("tcp", srv.POP3Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() string { l, _ := r.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
	cmd := func(l string) string { fmt.Fprintf(c, "%s\r\n", l); return read() }
	read()
	if got := cmd("STAT"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("STAT before login: %q", got)
	}
	cmd("USER " + u.Address)
	if got := cmd("PASS wrong"); !strings.HasPrefix(got, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q", got)
	}
	cmd("USER " + u.Address)
	if got := cmd("PASS " + u.Password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	if got := cmd("STAT"); !strings.HasPrefix(got, "+OK ") || strings.HasPrefix(got, "+OK 0 ") {
		t.Errorf("STAT of a seeded INBOX: %q", got)
	}
	if got := cmd("UIDL 1"); len(strings.Fields(got)) != 3 || len(strings.Fields(got)[2]) != 16 {
		t.Errorf("UIDL 1 = %q, want Dovecot's %%08X%%08X form", got)
	}
	if got := cmd("DELE 1"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("DELE: %q", got)
	}
	if got := cmd("RETR 999"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("RETR 999: %q", got)
	}
	if got := cmd("TOP 1 x"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("TOP 1 x: %q", got)
	}
	if got := cmd(strings.Repeat("A", 10000)); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("over-long line: %q", got)
	}
}
