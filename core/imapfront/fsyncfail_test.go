//go:build mailferry_testhash

package imapfront_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestAppendFsyncFailureSaysBye: when the fsync of the SQLite log fails
// after an APPEND committed (other sessions may already see the message),
// the client is told neither OK (it is not known to be on disk) nor NO
// (it would append again, and the first copy may be there after the
// restart: a duplicate): the connection ends with an untagged
// `BYE [UNAVAILABLE]` and no tagged answer, as if the server had crashed.
// The message is stored once; the store takes no other write (ErrStopped).
// (The fsync failure is injected with the test tag: store.FailLogFsyncs.)
func TestAppendFsyncFailureSaysBye(t *testing.T) {
	e := newEnv(t, nil)
	if e.url != "" {
		t.Skip("PostgreSQL keeps its own commit; the grouped fsync is SQLite's")
	}
	c := e.login()
	// Logged in before: a login after it is refused (its login counts
	// are a write), "try again later".
	c2 := e.login()
	store.FailLogFsyncs(e.st, errors.New("injected fsync error"))
	msg := "Subject: once\r\n\r\nonce\r\n"
	c.send(fmt.Sprintf("a1 APPEND INBOX {%d}\r\n", len(msg)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: no continuation: %q", l)
	}
	c.send(msg + "\r\n")
	var got []string
	for {
		c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		l, err := c.r.ReadString('\n')
		if l != "" {
			got = append(got, strings.TrimSuffix(l, "\r\n"))
		}
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("read: %v (after %q)", err, got)
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "* BYE [UNAVAILABLE] ") {
		t.Fatalf("APPEND whose fsync failed answered %q; want only an untagged BYE [UNAVAILABLE], then the connection closed", got)
	}
	ctx := context.Background()
	msgs, err := e.st.Messages(ctx, e.inbox().ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages after the APPEND, want it stored once", len(msgs))
	}
	if b, err := e.st.MessageBytes(ctx, msgs[0]); err != nil || string(b) != msg {
		t.Fatalf("stored bytes %q, %v; want the APPEND's", b, err)
	}
	// Every other write is refused, and its session ended the same way.
	c2.send("b1 CREATE Later\r\n")
	if l := c2.line(); !strings.HasPrefix(l, "* BYE [UNAVAILABLE] ") {
		t.Fatalf("CREATE after the failed fsync: %q, want BYE", l)
	}
}
