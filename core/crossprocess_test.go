package core_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core"
	"mailferry/core/store"
)

// TestIdleSeesOtherProcessAppend: a `serve` Core and another Store on the
// same data directory, as a concurrent `mailferry migrate` has. Mail the
// other appends shows in an IMAP IDLE of the Core, over a real connection,
// within a second.
func TestIdleSeesOtherProcessAppend(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	co, err := core.Open(core.Config{
		DataDir:             data,
		Hostname:            "mail.test",
		IMAPListen:          "127.0.0.1:0",
		IMAPSListen:         core.Off,
		SMTPListen:          core.Off,
		SubmissionListen:    core.Off,
		SubmissionTLSListen: core.Off,
		POP3Listen:          core.Off,
		POP3SListen:         core.Off,
		AllowInsecureAuth:   true,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	if _, err := core.StoreOf(co).CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	acct, err := core.StoreOf(co).CreateAccount(ctx, "alice@example.test", "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}

	other, err := store.Open(filepath.Join(data, "mailferry.db"), &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	inbox, err := other.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", co.Addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, l)
		}
		return strings.TrimRight(l, "\r\n")
	}
	cmd := func(tag, command string) {
		t.Helper()
		fmt.Fprintf(c, "%s %s\r\n", tag, command)
		for {
			l := line()
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %s", command, l)
				}
				return
			}
		}
	}
	line() // greeting
	cmd("a", `LOGIN alice@example.test Secret-1`)
	cmd("b", "SELECT INBOX")
	fmt.Fprintf(c, "i IDLE\r\n")
	if l := line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}

	start := time.Now()
	if _, err := other.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: from migrate\r\n\r\nhi\r\n")}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no untagged response within a second of another process's append: %v", err)
	}
	if l = strings.TrimRight(l, "\r\n"); l != "* 1 EXISTS" {
		t.Fatalf("IDLE after another process's append: %q", l)
	}
	t.Logf("seen after %v", time.Since(start))
	fmt.Fprintf(c, "DONE\r\n")
	for !strings.HasPrefix(line(), "i OK") {
	}
}
