// Package imapfront is Mailferry's IMAP server (RFC 3501 IMAP4rev1 with
// UIDPLUS, MOVE, IDLE, NAMESPACE, LIST-EXTENDED, LIST-STATUS, SPECIAL-USE,
// ESEARCH, SEARCHRES, LITERAL+, BINARY, STARTTLS and implicit TLS per
// RFC 8314), built on go-imap v2's imapserver and backed by core/store.
//
// Invariants:
//   - Message bytes are served exactly as stored: BODY[] and every other
//     BODY[section] is cut out of the stored bytes by offsets, never parsed
//     and written back. A message that does not parse is still appended and
//     served; only its ENVELOPE and BODYSTRUCTURE are best effort.
//   - ENVELOPE and BODYSTRUCTURE come from the store's cache (see Summarize);
//     a message is parsed only when its cache entry is missing or unreadable,
//     and the result is then kept with store.SetMessageCaches.
//   - Each session numbers messages from its own snapshot of the mailbox's
//     UIDs. The snapshot changes only when the session reports the change to
//     its client: EXISTS for new messages, EXPUNGE (only where RFC 3501
//     allows it: not during FETCH, STORE or SEARCH) for removed ones, and
//     FETCH FLAGS for flags changed by anyone else — another connection, the
//     migration engine or the relay — learnt from store.Watch and the
//     mailbox's MODSEQ.
//   - A password is never logged; failed logins are rate-limited per remote
//     IP address and per username.
//   - Mailbox names are UTF-8 in the store; go-imap turns them into modified
//     UTF-7 on the wire (RFC 3501 5.1.3), or keeps them UTF-8 for a client
//     that enabled UTF8=ACCEPT (RFC 6855).
package imapfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// Migrator is the migration engine as the IMAP front end sees it.
type Migrator interface {
	// FirstLogin is called when a login names an address that has no
	// account. It checks the password at the old server (if the address's
	// domain is migrating), creates the account and starts its migration,
	// returning the new account — or an error (wrong password, domain not
	// migrating: the login then fails with NO [AUTHENTICATIONFAILED]).
	FirstLogin(ctx context.Context, username, password string) (*store.Account, error)
	// LoggedIn is called after an existing account logged in successfully;
	// it must not block (it may resume an unfinished migration).
	LoggedIn(acct *store.Account, password string)
}

// LoginRateLimit bounds failed logins. Each remote IP address and each
// username has a bucket of attempts that refills over time; a failed login
// takes one, and while a bucket is empty logins are refused without
// checking the password. The zero value means the defaults.
type LoginRateLimit struct {
	// PerIP is the number of failures an IP address may have in a row;
	// 0 means 20.
	PerIP int
	// PerUser is the number of failures a username may have in a row;
	// 0 means 10.
	PerUser int
	// Refill is the time after which one more attempt is granted; 0 means
	// one minute.
	Refill time.Duration
	// Delay is how long a failed login waits before its answer; 0 means
	// one second, a negative value none.
	Delay time.Duration
}

// Options configures a Server. Store is required.
type Options struct {
	// Store is the mail store served; required.
	Store *store.Store
	// Migrator handles first logins of unknown users; nil means none (an
	// unknown user simply fails to log in).
	Migrator Migrator
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// TLSConfig enables STARTTLS on Serve and is needed by ServeTLS; nil
	// means no TLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows LOGIN and AUTHENTICATE PLAIN without TLS
	// (for loopback tests, or a server with no TLS at all).
	AllowInsecureAuth bool
	// AppendLimit is the largest message APPEND accepts, in bytes
	// (RFC 7889); 0 means 64 MiB.
	AppendLimit uint32
	// LoginRateLimit bounds failed logins.
	LoginRateLimit LoginRateLimit
}

// Server is Mailferry's IMAP server.
type Server struct {
	st       *store.Store
	migrator Migrator
	log      *slog.Logger
	tls      *tls.Config
	limit    uint32
	imap     *imapserver.Server
	limiter  *limiter
	ctx      context.Context
	cancel   context.CancelFunc
	delay    time.Duration
	sessions sync.WaitGroup
}

// New makes a Server; it starts serving with Serve or ServeTLS.
func New(opts *Options) (*Server, error) {
	if opts == nil || opts.Store == nil {
		return nil, errors.New("imapfront: Options.Store is required")
	}
	s := &Server{
		st:       opts.Store,
		migrator: opts.Migrator,
		log:      opts.Logger,
		tls:      opts.TLSConfig,
		limit:    opts.AppendLimit,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.limit == 0 {
		s.limit = 64 << 20
	}
	rl := opts.LoginRateLimit
	if rl.PerIP <= 0 {
		rl.PerIP = 20
	}
	if rl.PerUser <= 0 {
		rl.PerUser = 10
	}
	if rl.Refill <= 0 {
		rl.Refill = time.Minute
	}
	switch {
	case rl.Delay == 0:
		s.delay = time.Second
	case rl.Delay > 0:
		s.delay = rl.Delay
	}
	s.limiter = newLimiter(rl)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:        {},
			imap.CapNamespace:        {},
			imap.CapUIDPlus:          {},
			imap.CapESearch:          {},
			imap.CapSearchRes:        {},
			imap.CapListExtended:     {},
			imap.CapListStatus:       {},
			imap.CapMove:             {},
			imap.CapStatusSize:       {},
			imap.CapBinary:           {},
			imap.CapChildren:         {},
			imap.CapSpecialUse:       {},
			imap.CapCreateSpecialUse: {},
			imap.CapLiteralPlus:      {},
		},
		Logger:       printfLogger{s.log},
		TLSConfig:    opts.TLSConfig,
		InsecureAuth: opts.AllowInsecureAuth,
	})
	return s, nil
}

// Serve accepts IMAP connections on ln (port 143 style: STARTTLS is offered
// when Options.TLSConfig is set). It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.imap.Serve(coalescingListener{Listener: ln, log: s.log})
}

// ServeTLS accepts implicit-TLS IMAP connections on ln (port 993, RFC 8314).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.tls == nil {
		return errors.New("imapfront: ServeTLS needs Options.TLSConfig")
	}
	return s.imap.Serve(tls.NewListener(coalescingListener{Listener: ln, log: s.log}, s.tls))
}

// Close stops all listeners and closes all connections.
func (s *Server) Close() error {
	s.cancel()
	err := s.imap.Close()
	if err != nil && strings.Contains(err.Error(), "server closed") {
		err = nil
	}
	// Connections are closed; wait (bounded) for their sessions to end so
	// that none touches the store after Close returns.
	done := make(chan struct{})
	go func() {
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("imapfront: panic waiting for sessions", "panic", v)
			}
		}()
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("imapfront: sessions still running after Close")
	}
	return err
}

// printfLogger adapts slog to imapserver.Logger. go-imap logs connection
// errors (a client gone, a syntax error) this way: they are not ours.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "panic") {
		l.log.Error("imapfront: " + msg)
		return
	}
	l.log.Info("imapfront: " + msg)
}

// limiter is a set of token buckets for failed logins.
type limiter struct {
	rl LoginRateLimit

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int // sweep refilled buckets when there are more than this
}

// minSweep is the number of buckets below which refilled ones are kept.
const minSweep = 100000

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rl LoginRateLimit) *limiter {
	return &limiter{rl: rl, buckets: map[string]*bucket{}, sweepAt: minSweep}
}

func (l *limiter) capacity(key string) float64 {
	if strings.HasPrefix(key, "ip:") {
		return float64(l.rl.PerIP)
	}
	return float64(l.rl.PerUser)
}

// refill brings a bucket up to date; l.mu is held.
func (l *limiter) refill(key string, now time.Time) *bucket {
	c := l.capacity(key)
	b := l.buckets[key]
	if b == nil {
		return &bucket{tokens: c, last: now}
	}
	b.tokens += float64(now.Sub(b.last)) / float64(l.rl.Refill)
	if b.tokens > c {
		b.tokens = c
	}
	b.last = now
	return b
}

// allowed reports whether all keys still have attempts left.
func (l *limiter) allowed(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, k := range keys {
		if l.refill(k, now).tokens < 1 {
			return false
		}
	}
	return true
}

// fail takes one attempt from each key.
func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if len(l.buckets) > l.sweepAt {
		// Forget buckets that have refilled: they are the same as new. The
		// next sweep waits until the map has doubled, so that many keys
		// failing at once (an attack) cost each failure O(1), not a scan.
		for k := range l.buckets {
			if l.refill(k, now).tokens >= l.capacity(k) {
				delete(l.buckets, k)
			}
		}
		l.sweepAt = max(minSweep, 2*len(l.buckets))
	}
	for _, k := range keys {
		b := l.refill(k, now)
		b.tokens--
		if b.tokens < 0 {
			b.tokens = 0
		}
		l.buckets[k] = b
	}
}

// succeed forgives a username's failures.
func (l *limiter) succeed(key string) {
	l.mu.Lock()
	delete(l.buckets, key)
	l.mu.Unlock()
}
