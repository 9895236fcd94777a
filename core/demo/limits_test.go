package demo_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/demo"
)

// rawConn is a raw IMAP connection and its first line (the greeting), or
// the error reading it.
func rawConn(t *testing.T, s *demo.Server) (net.Conn, *bufio.Reader, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", s.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	return c, r, line, err
}

// With MaxConnsPerIP, one connection more than the cap is greeted with a
// BYE and closed (Courier's MAXPERIP); with CapDrop it is closed before
// any greeting. Closing a connection frees its place.
func TestMaxConnsPerIP(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			s := startDemo(t, &demo.Options{MaxConnsPerIP: 2, CapDrop: drop})
			first, _, g1, err1 := rawConn(t, s)
			_, _, g2, err2 := rawConn(t, s)
			if err1 != nil || err2 != nil || !strings.HasPrefix(g1, "* OK") || !strings.HasPrefix(g2, "* OK") {
				t.Fatalf("greetings within the cap: %q %v, %q %v", g1, err1, g2, err2)
			}
			_, r, g3, err := rawConn(t, s)
			if drop {
				if err != io.EOF || g3 != "" {
					t.Fatalf("over the cap with CapDrop: %q, %v; want a close without greeting", g3, err)
				}
			} else {
				if err != nil || g3 != "* BYE "+demo.TooManyConnections+"\r\n" {
					t.Fatalf("over the cap: %q, %v", g3, err)
				}
				if rest, err := r.ReadString('\n'); err != io.EOF {
					t.Fatalf("after the BYE greeting: %q, %v; want the connection closed", rest, err)
				}
			}
			fmt.Fprintf(first, "a LOGOUT\r\n")
			first.Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, _, g, err := rawConn(t, s)
				if err == nil && strings.HasPrefix(g, "* OK") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a closed connection's place was not freed: %q, %v", g, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// With LoginFailDelay a refused login is answered after the delay, an
// accepted one at once; with BareLoginOnly only the bare name logs in.
func TestLoginFailDelayAndBareLoginOnly(t *testing.T) {
	const delay = 300 * time.Millisecond
	s := startDemo(t, &demo.Options{BareLoginOnly: true, LoginFailDelay: delay})
	pw := password(t, s, "bob@example.test")
	var refused int64
	for _, tc := range []struct {
		name, pass string
		ok         bool
	}{
		{"bob@example.test", pw, false},
		{"bob", pw, true},
		{"BOB", pw, true},
		{"bob", "wrong", false},
		{"nobody", pw, false},
	} {
		c, r, g, err := rawConn(t, s)
		if err != nil || !strings.HasPrefix(g, "* OK") {
			t.Fatalf("greeting: %q, %v", g, err)
		}
		start := time.Now()
		fmt.Fprintf(c, "a LOGIN %q %q\r\n", tc.name, tc.pass)
		var line string
		for !strings.HasPrefix(line, "a ") {
			if line, err = r.ReadString('\n'); err != nil {
				t.Fatalf("LOGIN %s: %v", tc.name, err)
			}
		}
		took := time.Since(start)
		if got := strings.HasPrefix(line, "a OK"); got != tc.ok {
			t.Errorf("LOGIN %s: %q, want OK=%v", tc.name, line, tc.ok)
		}
		if !tc.ok {
			refused++
		}
		if got := s.FailedLogins(); got != refused {
			t.Errorf("after LOGIN %s: FailedLogins %d, want %d", tc.name, got, refused)
		}
		if !tc.ok && took < delay {
			t.Errorf("LOGIN %s refused after %v, want at least %v", tc.name, took, delay)
		}
		if tc.ok && took >= delay {
			t.Errorf("LOGIN %s accepted after %v: an accepted login is not delayed", tc.name, took)
		}
	}
}
