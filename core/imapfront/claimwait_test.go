package imapfront_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// oneSelected makes an env whose INBOX holds one message, and a session
// that selected it.
func oneSelected(t *testing.T) (*env, *conn) {
	t.Helper()
	e := newEnv(t, nil)
	e.put(e.inbox(), "Subject: one\r\n\r\none\r\n")
	a := e.login()
	mustContain(t, "SELECT", a.ok("SELECT INBOX"), "* 1 EXISTS\r\n")
	return e, a
}

// heldBack fails t unless a FETCH on c tells of no new message (the
// writer is busy: their claim would wait for it).
func heldBack(t *testing.T, c *conn) {
	t.Helper()
	if un := c.ok("FETCH 1 (FLAGS)"); strings.Contains(un, "EXISTS") {
		t.Fatalf("FETCH told of the new message while the writer was busy:\n%s", un)
	}
}

// TestFetchDoesNotWaitForRecentClaim: a FETCH's answer does not wait for
// the writer to claim \Recent on new mail (another session's APPEND holds
// the writer for its fsync): the new message is held back and told at the
// next NOOP, with its RECENT; held back longer than a second, a FETCH
// waits for the claim and tells it.
func TestFetchDoesNotWaitForRecentClaim(t *testing.T) {
	e, a := oneSelected(t)
	ctx := context.Background()

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

// TestFetchHoldsBackAfterHeldMessageWent: new messages held back from a
// FETCH that then went (expunged before any command told them) hold
// nothing back any more: the next new message's FETCH does not wait for
// the writer because of a hold that began long before and ended.
func TestFetchHoldsBackAfterHeldMessageWent(t *testing.T) {
	e, a := oneSelected(t)
	ctx := context.Background()

	// Held back once, then expunged before anyone told it.
	two := e.put(e.inbox(), "Subject: two\r\n\r\ntwo\r\n", `\Deleted`)
	tx, err := e.st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heldBack(t, a)
	tx.Rollback()
	if _, err := e.st.Expunge(ctx, e.inbox().ID, []uint32{two.UID}); err != nil {
		t.Fatal(err)
	}
	if un := a.ok("FETCH 1 (FLAGS)"); strings.Contains(un, "EXISTS") || strings.Contains(un, "EXPUNGE") {
		t.Fatalf("FETCH told of a message it never numbered:\n%s", un)
	}
	time.Sleep(1100 * time.Millisecond)

	// A new message while the writer is busy: held back again, at once.
	e.put(e.inbox(), "Subject: three\r\n\r\nthree\r\n")
	if tx, err = e.st.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	go func() {
		time.Sleep(3 * time.Second)
		released.Store(true)
		tx.Rollback()
	}()
	if un := a.ok("FETCH 1 (FLAGS)"); released.Load() {
		t.Fatalf("FETCH waited for the writer (a hold that ended long ago counted):\n%s", un)
	}
	for !released.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	mustContain(t, "NOOP", a.ok("NOOP"), "* 2 EXISTS\r\n")
}

// TestRecentOnceWhenHeldBack: new messages held back from two sessions'
// FETCHes at once (the writer busy) are \Recent in exactly one session
// once both are told (RFC 3501 2.3.2: at most one session; and not none);
// held back from a session that then logs out, they are recent to the
// next session that selects the mailbox.
func TestRecentOnceWhenHeldBack(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.put(e.inbox(), "Subject: one\r\n\r\none\r\n")
	a, b := e.login(), e.login()
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	e.put(e.inbox(), "Subject: two\r\n\r\ntwo\r\n")
	tx, err := e.st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heldBack(t, a)
	heldBack(t, b)
	tx.Rollback()
	ua, ub := a.ok("NOOP"), b.ok("NOOP")
	mustContain(t, "NOOP a", ua, "* 2 EXISTS\r\n")
	mustContain(t, "NOOP b", ub, "* 2 EXISTS\r\n")
	fa, fb := a.ok("FETCH 2 (FLAGS)"), b.ok("FETCH 2 (FLAGS)")
	ra, rb := strings.Contains(fa, `\Recent`), strings.Contains(fb, `\Recent`)
	if ra == rb {
		t.Fatalf("the new message recent in both or neither session (a %v, b %v):\n%s%s\n--\n%s%s", ra, rb, ua, fa, ub, fb)
	}

	// Held back from a session that leaves: recent to the next one.
	e.put(e.inbox(), "Subject: three\r\n\r\nthree\r\n")
	if tx, err = e.st.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	heldBack(t, a)
	a.ok("LOGOUT")
	tx.Rollback()
	b.ok("UNSELECT")
	mustContain(t, "SELECT after the session that held it back left", b.ok("SELECT INBOX"), "* 1 RECENT\r\n")
}
