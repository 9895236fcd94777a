package auth

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter is a set of token buckets of failed logins, keyed by source or by
// account and source. A login takes a token before its check (so parallel
// attempts cannot race past the limit) and a success gives it back. A
// login that finds a bucket empty while other logins holding its tokens
// are still being checked waits for their outcome (takeWait) rather than
// being refused: a burst of good logins behind one address (an office's
// NAT) gets in, each as a token comes back, while the number of checks
// in flight or failed never exceeds the bucket.
type limiter struct {
	refill time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int
}

type bucket struct {
	tokens float64
	cap    float64
	last   time.Time
	held   int           // tokens taken by takeWait and not yet settled (done)
	wake   chan struct{} // closed (and cleared) when a held token settles
}

// minSweep is the number of buckets below which full ones are kept.
const minSweep = 100000

func newLimiter(refill time.Duration) *limiter {
	return &limiter{refill: refill, buckets: map[string]*bucket{}, sweepAt: minSweep}
}

// get returns key's bucket brought up to date; l.mu is held.
func (l *limiter) get(key string, capacity int, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			// Forget full buckets: they are the same as new ones. The next
			// sweep waits until the map has doubled, so that a flood of
			// new keys costs each O(1), not a scan.
			for k, o := range l.buckets {
				if l.fill(o, now); o.tokens >= o.cap && o.held == 0 {
					delete(l.buckets, k)
				}
			}
			l.sweepAt = max(minSweep, 2*len(l.buckets))
		}
		b = &bucket{tokens: float64(capacity), cap: float64(capacity), last: now}
		l.buckets[key] = b
		return b
	}
	l.fill(b, now)
	return b
}

func (l *limiter) fill(b *bucket, now time.Time) {
	b.tokens = min(b.cap, b.tokens+float64(now.Sub(b.last))/float64(l.refill))
	b.last = now
}

// take takes one attempt from key's bucket, reporting false (and taking
// nothing) when it is empty.
func (l *limiter) take(key string, capacity int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, capacity, time.Now())
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// takeWait is take for a login that settles its token with done: while
// key's bucket is empty and other logins hold its tokens, it waits for
// one of them to settle (a success gives its token back), until ctx ends.
// It reports false, taking nothing, when the bucket is empty and nobody
// holds a token (they failed: the limit holds), or when ctx ended.
func (l *limiter) takeWait(ctx context.Context, key string, capacity int) bool {
	for {
		l.mu.Lock()
		b := l.get(key, capacity, time.Now())
		if b.tokens >= 1 {
			b.tokens--
			b.held++
			l.mu.Unlock()
			return true
		}
		if b.held == 0 {
			l.mu.Unlock()
			return false
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		}
	}
}

// done settles a token taken by takeWait (after give, for a success), and
// wakes the logins waiting for key's bucket.
func (l *limiter) done(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return
	}
	b.held = max(0, b.held-1)
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

// give gives one attempt back to key's bucket.
func (l *limiter) give(key string, capacity int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, capacity, time.Now())
	b.tokens = min(b.cap, b.tokens+1)
}

// reset forgets key's failures. Tokens held by logins being checked stay
// theirs; the logins waiting for the bucket are woken.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return
	}
	if b.held == 0 {
		delete(l.buckets, key)
		return
	}
	b.tokens = max(b.tokens, b.cap-float64(b.held))
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

// connCount counts open connections per source.
// connCount bounds the open connections of a listener: max per source,
// netMax per network (an IPv4 /24, an IPv6 /48: an IPv6 site has 65,536
// sources of its own) and total in all, so that no one site and no flood
// runs the process out of descriptors and memory.
type connCount struct {
	max, netMax, totalMax int

	mu    sync.Mutex
	src   map[netip.Prefix]int
	net   map[netip.Prefix]int
	total int
}

// Connections per network and in all, in sources' worth: a network's
// many users or a NAT pool stay far below 20 sources' worth (IMAP: 1,000
// connections), and the process keeps its descriptors at 200 (IMAP:
// 10,000).
const (
	connsPerNetwork = 20
	connsTotal      = 200
)

func newConnCount(max int) *connCount {
	return &connCount{max: max, netMax: connsPerNetwork * max, totalMax: connsTotal * max,
		src: map[netip.Prefix]int{}, net: map[netip.Prefix]int{}}
}

func (c *connCount) open(src, nw netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src[src] >= c.max || c.net[nw] >= c.netMax || c.total >= c.totalMax {
		return false
	}
	c.src[src]++
	c.net[nw]++
	c.total++
	return true
}

func (c *connCount) close(src, nw netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.src[src]--; c.src[src] <= 0 {
		delete(c.src, src)
	}
	if c.net[nw]--; c.net[nw] <= 0 {
		delete(c.net, nw)
	}
}

// Listener wraps ln so that a source (an IPv4 address, an IPv6 /64) with
// max open connections on it (0: Options.MaxConnsPerSource), a network (an
// IPv4 /24, an IPv6 /48) with 20 times that, or the listener with 200 times
// that, has its next one sent refuse (the protocol's "too many
// connections" line, such as IMAP's "* BYE …" or SMTP's 421) and closed at
// once.
func (p *Policy) Listener(ln net.Listener, max int, refuse string) net.Listener {
	if max <= 0 {
		max = p.opts.MaxConnsPerSource
	}
	return &limitListener{Listener: ln, p: p, conns: newConnCount(max), refuse: []byte(refuse)}
}

type limitListener struct {
	net.Listener
	p      *Policy
	conns  *connCount
	refuse []byte
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := SourceOf(c.RemoteAddr())
		nw := Network(src.Addr())
		if l.conns.open(src, nw) {
			return &countedConn{Conn: c, done: func() { l.conns.close(src, nw) }}, nil
		}
		l.p.log.Warn("connection refused: too many from this source, its network or in all", "remote", c.RemoteAddr().String())
		// The refusal must not hold up Accept: a goroutine writes it with a
		// short deadline and ends with the connection.
		go func() {
			defer func() { recover() }()
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(l.refuse)
		}()
	}
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
