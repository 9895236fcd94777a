package imapfront_test

import (
	"strings"
	"testing"
	"time"
)

// The login phase is bounded as a whole: a client that never logs in but
// sends NOOP more often than the per-command timeout (30 s) held its
// connection, and a share of its source's connections, for ever. It is
// told BYE once LoginTimeout has passed since the greeting; a client that
// logged in in time is not cut by it.
func TestLoginPhaseBounded(t *testing.T) {
	e := newEnv(t, &envOpts{loginTimeout: time.Second})
	start := time.Now() // the greeting is after it
	idle := e.dial()
	logged := e.login()
	for i := 0; time.Since(start) < 5*time.Second; i++ {
		if _, err := idle.c.Write([]byte("n NOOP\r\n")); err != nil {
			if time.Since(start) < 700*time.Millisecond {
				t.Fatalf("write after %v: %v", time.Since(start), err)
			}
			return // closed at the end of the login phase
		}
		l, err := idle.r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "n OK") {
			// The end is a BYE, or the connection closed when the NOOP
			// crossed it (a close with the NOOP unread resets).
			if err == nil && !strings.HasPrefix(l, "* BYE") {
				t.Fatalf("after %v: %q, %v; want OK, or BYE past a second", time.Since(start).Round(time.Millisecond), l, err)
			}
			if time.Since(start) < 700*time.Millisecond {
				t.Fatalf("BYE after %v, before the login timeout", time.Since(start))
			}
			logged.ok("NOOP") // fails the test unless OK
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("a client sending NOOP without logging in was served for %v (login timeout 1 s)", time.Since(start).Round(time.Millisecond))
}
