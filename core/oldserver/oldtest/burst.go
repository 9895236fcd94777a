package oldtest

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// LoginFrom logs user in over a new IMAP connection to addr (the fixture
// or any IMAP server) from the loopback address from, and returns the
// LOGIN's tagged answer ("a OK ..."), or the greeting if it was not OK, or
// what failed; after the answer it logs out. For benchmarks of logins as
// a user's client sees them: from its connect to the answer.
func LoginFrom(addr, from, user, pass string) string {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	if g, err := r.ReadString('\n'); err != nil {
		return "greeting: " + err.Error()
	} else if !strings.HasPrefix(g, "* OK") {
		return strings.TrimSpace(g)
	}
	fmt.Fprintf(c, "a LOGIN %q %q\r\n", user, pass)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "read: " + err.Error()
		}
		if strings.HasPrefix(l, "a ") {
			fmt.Fprintf(c, "b LOGOUT\r\n")
			return strings.TrimSpace(l)
		}
	}
}

// BurstLogins logs every user in at the same instant, each from a
// loopback address of its own (127.0.0.10 on), to the addrs in turn (the
// first user, by name, to the first, the next to the second, ...), and
// returns how long each took, sorted. A login not answered OK fails tb.
func BurstLogins(tb testing.TB, users map[string]string, addrs ...string) []time.Duration {
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	slices.Sort(names)
	took := make([]time.Duration, len(names))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			// One address each, as users at their own desks.
			from := fmt.Sprintf("127.0.0.%d", 10+i)
			<-start
			t := time.Now()
			addr := addrs[i%len(addrs)]
			if got := LoginFrom(addr, from, n, users[n]); !strings.HasPrefix(got, "a OK") {
				tb.Errorf("login %s at %s: %s", n, addr, got)
			}
			took[i] = time.Since(t)
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(took)
	return took
}
