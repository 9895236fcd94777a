package pop3front_test

import (
	"strings"
	"testing"
	"time"
)

// The AUTHORIZATION state is bounded as a whole: a client that never logs
// in but sends CAPA more often than the idle timeout held its connection,
// and a share of its source's, for ever. It is told -ERR and closed once
// LoginTimeout has passed since the greeting; a session that logged in in
// time is not cut by it.
func TestLoginPhaseBounded(t *testing.T) {
	e := newEnv(t, &envOpts{login: time.Second})
	start := time.Now() // the greeting is after it
	idle := e.dial()
	logged := e.login()
	for time.Since(start) < 5*time.Second {
		// The end is -ERR Login timed out, or the connection closed when
		// the CAPA crossed it (a close with the CAPA unread resets).
		if _, err := idle.c.Write([]byte("CAPA\r\n")); err != nil {
			if time.Since(start) < 700*time.Millisecond {
				t.Fatalf("write after %v: %v", time.Since(start), err)
			}
			return // closed at the end of the login phase
		}
		idle.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r, err := idle.r.ReadString('\n')
		if err != nil || !strings.HasPrefix(r, "+OK") {
			if (err == nil && r != "-ERR Login timed out\r\n") || time.Since(start) < 700*time.Millisecond {
				t.Fatalf("after %v: %q, %v; want +OK, or the end past a second", time.Since(start).Round(time.Millisecond), r, err)
			}
			logged.ok("NOOP")
			return
		}
		idle.multi()
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("a client sending CAPA without logging in was served for %v (login timeout 1 s)", time.Since(start).Round(time.Millisecond))
}
