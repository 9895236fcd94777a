//go:build mailferry_testhash

package pop3front_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core/store"
)

// TestQuitStoreStoppedRemovesNothing: when the store stops between DELE
// and QUIT (a failed fsync of the log; store.FailLogFsyncs, test tag), the
// lock cannot be checked: QUIT removes nothing and says the fault is the
// server's, for now ([SYS/TEMP]), not that another session has the
// maildrop ([IN-USE], which it said before).
func TestQuitStoreStoppedRemovesNothing(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	p := e.login()
	p.ok("DELE 1")
	store.FailLogFsyncs(e.st, errors.New("injected fsync error"))
	if _, err := e.st.AppendMessage(context.Background(), e.inbox().ID, &store.NewMessage{Body: []byte(msg1)}); !errors.Is(err, store.ErrStopped) {
		t.Fatalf("append with a failing fsync: %v, want the store stopped", err)
	}
	if r := p.cmd("QUIT"); !strings.HasPrefix(r, "-ERR [SYS/TEMP]") {
		t.Fatalf("QUIT on a stopped store: %q, want -ERR [SYS/TEMP]", r)
	}
	if msgs, err := e.st.Messages(context.Background(), e.inbox().ID); err != nil || len(msgs) == 0 {
		t.Fatalf("messages after QUIT on a stopped store: %d (%v): removed without a lock", len(msgs), err)
	}
}
