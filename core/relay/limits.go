package relay

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter counts connections and AUTH failures per remote address.
type limiter struct {
	maxConns    int
	maxFailures int
	window      time.Duration

	mu       sync.Mutex
	conns    map[netip.Addr]int
	failures map[netip.Addr]*failures
}

type failures struct {
	n     int
	first time.Time
}

func newLimiter(maxConns, maxFailures int, window time.Duration) *limiter {
	return &limiter{maxConns: maxConns, maxFailures: maxFailures, window: window,
		conns: map[netip.Addr]int{}, failures: map[netip.Addr]*failures{}}
}

func addrIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// authBlocked reports whether ip used up its AUTH failures.
func (l *limiter) authBlocked(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[ip]
	if f == nil {
		return false
	}
	if time.Since(f.first) > l.window {
		delete(l.failures, ip)
		return false
	}
	return f.n >= l.maxFailures
}

func (l *limiter) authFailed(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[ip]
	if f == nil || time.Since(f.first) > l.window {
		f = &failures{first: time.Now()}
		l.failures[ip] = f
	}
	f.n++
	// Keep the map bounded: forget expired entries now and then.
	if len(l.failures) > 4096 {
		for k, v := range l.failures {
			if time.Since(v.first) > l.window {
				delete(l.failures, k)
			}
		}
	}
}

// listener wraps ln so that an address over its connection limit gets a
// 421 reply (RFC 5321 section 3.8) and is closed.
func (l *limiter) listener(ln net.Listener, log *slog.Logger) net.Listener {
	return &limitListener{Listener: ln, l: l, log: log}
}

type limitListener struct {
	net.Listener
	l   *limiter
	log *slog.Logger
}

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrIP(c.RemoteAddr())
		ll.l.mu.Lock()
		n := ll.l.conns[ip]
		ok := n < ll.l.maxConns
		if ok {
			ll.l.conns[ip] = n + 1
		}
		ll.l.mu.Unlock()
		if ok {
			return &limitConn{Conn: c, l: ll.l, ip: ip}, nil
		}
		ll.log.Warn("too many connections", "remote", ip)
		// The refusal must not hold up Accept: it is written with a short
		// deadline by a goroutine that ends with it.
		go func() {
			defer recoverPanic(ll.log, "connection refusal")
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte("421 4.7.0 Too many connections from your address, try again later\r\n"))
		}()
	}
}

type limitConn struct {
	net.Conn
	l    *limiter
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns[c.ip] <= 1 {
			delete(c.l.conns, c.ip)
		} else {
			c.l.conns[c.ip]--
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
