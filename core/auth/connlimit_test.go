package auth_test

import (
	"net"
	"testing"
	"time"

	"mailferry/core/auth"
)

// acceptAll serves lln, handing each accepted connection to the channel.
func acceptAll(t *testing.T, lln net.Listener) chan net.Conn {
	accepted := make(chan net.Conn, 1000)
	go func() {
		for {
			c, err := lln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	return accepted
}

// dialFrom opens n connections to addr from 127.a.b.c.
func dialFrom(t *testing.T, addr string, ip net.IP, n int) {
	t.Helper()
	for range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// settle waits until no connection has been accepted for 300 ms and
// returns how many were.
func settle(accepted chan net.Conn) int {
	for n := len(accepted); ; {
		time.Sleep(300 * time.Millisecond)
		if m := len(accepted); m == n {
			return n
		} else {
			n = m
		}
	}
}

// Connections are bounded per network too (an IPv4 /24, an IPv6 /48: an
// IPv6 site has 65,536 sources of its own), at 20 sources' worth, and in
// all at 200 sources' worth, so that no one site and no flood runs the
// process out of descriptors and memory (found by helper attack: 40
// addresses of one /24, each within its own bound, had all their
// connections taken). Other networks still get in while one is full.
func TestListenerBoundsConnsPerNetworkAndInAll(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{MaxConnsPerSource: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lln := p.Listener(ln, 0, "* BYE too many\r\n")
	defer lln.Close()
	accepted := acceptAll(t, lln)
	addr := ln.Addr().String()
	for i := 1; i <= 30; i++ {
		dialFrom(t, addr, net.IPv4(127, 0, 1, byte(i)), 1)
	}
	if n := settle(accepted); n != 20 {
		t.Fatalf("%d connections from 30 addresses of one /24 taken, want 20 (20 sources' worth)", n)
	}
	// Other networks fill the rest, up to 200 in all.
	for net3 := 2; net3 <= 12; net3++ {
		for i := 1; i <= 20; i++ {
			dialFrom(t, addr, net.IPv4(127, 0, byte(net3), byte(i)), 1)
		}
	}
	if n := settle(accepted); n != 200 {
		t.Fatalf("%d connections taken in all, want 200 (200 sources' worth)", n)
	}
}
