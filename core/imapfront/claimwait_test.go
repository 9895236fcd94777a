package imapfront_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetchDoesNotWaitForRecentClaim: a FETCH's answer does not wait for
// the writer to claim \Recent on new mail (another session's APPEND holds
// the writer for its fsync): the new message is held back and told at the
// next NOOP, with its RECENT; held back longer than a second, a FETCH
// waits for the claim and tells it.
func TestFetchDoesNotWaitForRecentClaim(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.put(e.inbox(), "Subject: one\r\n\r\none\r\n")
	a := e.login()
	mustContain(t, "SELECT", a.ok("SELECT INBOX"), "* 1 EXISTS\r\n")

	e.put(e.inbox(), "Subject: two\r\n\r\ntwo\r\n")
	tx, err := e.st.Begin(ctx) // the writer, held as an APPEND's commit holds it
	if err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-release:
		case <-time.After(15 * time.Second):
		}
		released.Store(true)
		tx.Rollback()
	}()
	un := a.ok("FETCH 1 (FLAGS)")
	if released.Load() {
		t.Fatal("FETCH answered only once the writer was free")
	}
	if strings.Contains(un, "EXISTS") || strings.Contains(un, "RECENT") {
		t.Fatalf("FETCH told of the new message without claiming it:\n%s", un)
	}
	close(release)
	<-done
	mustContain(t, "NOOP after the writer was free", a.ok("NOOP"), "* 2 EXISTS\r\n* 2 RECENT\r\n")

	// Held back past the bound: the FETCH waits for the claim.
	e.put(e.inbox(), "Subject: three\r\n\r\nthree\r\n")
	if tx, err = e.st.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	un = a.ok("FETCH 1 (FLAGS)")
	if strings.Contains(un, "EXISTS") {
		t.Fatalf("FETCH told of the new message without claiming it:\n%s", un)
	}
	time.Sleep(1100 * time.Millisecond)
	go func() {
		time.Sleep(300 * time.Millisecond)
		tx.Rollback()
	}()
	mustContain(t, "FETCH a second after", a.ok("FETCH 1 (FLAGS)"), "* 3 EXISTS\r\n* 3 RECENT\r\n")
}
