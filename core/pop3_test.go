package core_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core"
	"mailferry/core/store"
)

// TestPOP3Served: Core serves POP3 through the one login policy: its
// connection bound per source, its 3-second failure delay, and the
// account's INBOX.
func TestPOP3Served(t *testing.T) {
	ctx := context.Background()
	co, err := core.Open(core.Config{
		DataDir: t.TempDir(), Hostname: "mail.test",
		IMAPListen: core.Off, IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionListen: core.Off,
		SubmissionTLSListen: core.Off, POP3Listen: "127.0.0.1:0", POP3SListen: "127.0.0.1:0",
		AllowInsecureAuth: true, MaxConnsPerSource: 2,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	if co.Addr("pop3") == "" || co.Addr("pop3s") == "" {
		t.Fatalf("pop3 %q pop3s %q: not listening", co.Addr("pop3"), co.Addr("pop3s"))
	}
	st := core.StoreOf(co)
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "alice@example.test", "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: hi\r\n\r\nhello\r\n")}); err != nil {
		t.Fatal(err)
	}
	dial := func() (net.Conn, *bufio.Reader, string) {
		c, err := net.Dial("tcp", co.Addr("pop3"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		l, _ := r.ReadString('\n')
		return c, r, l
	}
	cmd := func(c net.Conn, r *bufio.Reader, line string) string {
		c.Write([]byte(line + "\r\n"))
		l, _ := r.ReadString('\n')
		return strings.TrimSpace(l)
	}
	c1, r1, g := dial()
	if !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	cmd(c1, r1, "USER alice@example.test")
	start := time.Now()
	if r := cmd(c1, r1, "PASS wrong"); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q", r)
	}
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Errorf("wrong password answered after %v, want the policy's 3 s delay", d)
	}
	cmd(c1, r1, "USER alice@example.test")
	if r := cmd(c1, r1, "PASS Secret-1"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %q", r)
	}
	if r := cmd(c1, r1, "STAT"); r != "+OK 1 22" {
		t.Errorf("STAT = %q", r)
	}
	// The connection bound per source (2 here) holds for POP3.
	dial()
	if _, _, g := dial(); !strings.HasPrefix(g, "-ERR [SYS/TEMP] Too many connections") {
		t.Errorf("third connection: %q", g)
	}
}
