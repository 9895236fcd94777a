package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/auth"
	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Defaults of Options fields left zero.
const (
	DefaultMaxMessageBytes   = 32 << 20
	DefaultMaxRecipients     = 100
	DefaultReadTimeout       = 5 * time.Minute
	DefaultWriteTimeout      = time.Minute
	DefaultRetryBase         = time.Minute
	DefaultRetryMax          = time.Hour
	DefaultMaxAge            = 5 * 24 * time.Hour
	DefaultMaxConnsPerIP     = 20
	DefaultMaxAuthFailures   = 5
	DefaultAuthFailureWindow = 15 * time.Minute
	DefaultWorkers           = 4
	DefaultClientTimeout     = 2 * time.Minute
	DefaultShutdownGrace     = 30 * time.Second
	DefaultPollInterval      = 5 * time.Second
	// maxHops is the number of Received headers beyond which a message is
	// refused as looping (RFC 5321 section 6.3).
	maxHops = 50
)

// OldServerFunc returns the old-server settings of a local domain and whether
// the domain is migrating. A domain that is not local, or has no old server,
// returns nil settings and no error.
type OldServerFunc func(ctx context.Context, domain string) (*oldserver.Settings, bool, error)

// DialFunc opens an SMTP client connection to an old server, greeted (EHLO)
// and with TLS as its settings ask.
type DialFunc func(ctx context.Context, s *oldserver.Settings, localName string) (*smtp.Client, error)

// Stats are counters since New.
type Stats struct {
	// Accepted messages (one per DATA that got 250).
	Accepted uint64
	// Queued items written (relays and bounces).
	Queued uint64
	// Delivered local copies (one per account).
	Delivered uint64
	// Relayed recipients accepted by an old server.
	Relayed uint64
	// Deferred delivery attempts (temporary failures).
	Deferred uint64
	// Bounced recipients (permanent failure, expiry, retry limit).
	Bounced uint64
	// Dropped recipients that failed for good with no one to tell (null
	// reverse-path, for example a bounce that bounced).
	Dropped uint64
	// Rejected commands (MAIL, RCPT, DATA refusals) and refused AUTH.
	Rejected uint64
}

// EventKind says what an Event is about.
type EventKind string

// Event kinds.
const (
	EventAccepted  EventKind = "accepted"  // a message was accepted (QueueID 0 when nothing was queued: delivered locally or forwarded)
	EventDelivered EventKind = "delivered" // a copy landed in a local INBOX
	EventRelayed   EventKind = "relayed"   // an old server accepted recipients (from the queue, or forwarded while the sender waited: QueueID 0)
	EventDeferred  EventKind = "deferred"  // a temporary failure, will retry
	EventBounced   EventKind = "bounced"   // a DSN was queued for the sender
	EventDropped   EventKind = "dropped"   // failed for good, nobody to notify
	EventRejected  EventKind = "rejected"  // a command was refused
)

// Event is something that happened, for the UI's activity view.
type Event struct {
	Time    time.Time
	Kind    EventKind
	QueueID int64
	From    string
	Rcpts   []string
	// Detail is the error or remote reply, if any.
	Detail string
}

// Relay is Mailferry's SMTP service. It is safe for concurrent use.
type Relay struct {
	opts Options
	st   *store.Store
	log  *slog.Logger
	// testLease, when set (by tests only), is the queue claims' lease.
	testLease time.Duration

	closed     chan struct{} // closed by Close
	hardStop   chan struct{} // closed after ShutdownGrace
	closeOnce  sync.Once
	kick       chan struct{} // wakes the worker
	finished   chan struct{} // a delivery finished
	dataWG     sync.WaitGroup
	data       *dataBudget // bounds the memory of messages being received (MaxDataInFlight)
	inflightMu sync.Mutex
	inflight   map[int64]bool // queue items being delivered
	// inflightFrom counts the items being delivered per reverse-path.
	inflightFrom map[string]int
	runWG        sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	servers   map[*smtp.Server]struct{} // one per connection
	subs      map[chan Event]struct{}
	isClosed  bool

	pool    *clientPool
	callout *calloutCache
	sizes   *sizeCache

	resolver *net.Resolver
	sts      *stsCache
	seen     seenUsers

	accepted, queued, delivered, relayed, deferred, bounced, dropped, rejected atomic.Uint64
}

// ErrClosed is returned by the Serve methods after Close.
var ErrClosed = errors.New("relay: closed")

// New returns a Relay; start it with the Serve methods and Run.
func New(opts Options) (*Relay, error) {
	if opts.Store == nil {
		return nil, errors.New("relay: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		opts.Hostname = h
	}
	def(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&opts.MaxRecipients, DefaultMaxRecipients)
	def(&opts.MaxDataInFlight, 16)
	def(&opts.MaxDataPerSource, 4)
	def(&opts.MaxConnsPerIP, DefaultMaxConnsPerIP)
	def(&opts.MaxAuthFailures, DefaultMaxAuthFailures)
	def(&opts.Workers, DefaultWorkers)
	def(&opts.ReadTimeout, DefaultReadTimeout)
	def(&opts.WriteTimeout, DefaultWriteTimeout)
	def(&opts.AuthFailureWindow, DefaultAuthFailureWindow)
	if opts.Auth == nil {
		var err error
		opts.Auth, err = auth.New(auth.Options{Store: opts.Store, Logger: opts.Logger,
			PerSource: opts.MaxAuthFailures, PerAccount: opts.MaxAuthFailures,
			Refill: opts.AuthFailureWindow / time.Duration(opts.MaxAuthFailures)})
		if err != nil {
			return nil, err
		}
	}
	def(&opts.RetryBase, DefaultRetryBase)
	def(&opts.RetryMax, DefaultRetryMax)
	def(&opts.MaxAge, DefaultMaxAge)
	def(&opts.ClientTimeout, DefaultClientTimeout)
	def(&opts.ShutdownGrace, DefaultShutdownGrace)
	def(&opts.PollInterval, DefaultPollInterval)
	if opts.RetryMax < opts.RetryBase {
		opts.RetryMax = opts.RetryBase
	}
	trusted := make([]netip.Prefix, 0, len(opts.TrustedNetworks))
	for i, p := range opts.TrustedNetworks {
		if !p.IsValid() {
			return nil, fmt.Errorf("relay: trusted network %d is not a valid prefix", i)
		}
		trusted = append(trusted, p.Masked())
	}
	opts.TrustedNetworks = trusted
	r := &Relay{
		opts:         opts,
		st:           opts.Store,
		log:          opts.Logger,
		closed:       make(chan struct{}),
		hardStop:     make(chan struct{}),
		kick:         make(chan struct{}, 1),
		inflight:     map[int64]bool{},
		inflightFrom: map[string]int{},
		finished:     make(chan struct{}, 1),
		servers:      map[*smtp.Server]struct{}{},
		listeners:    map[net.Listener]struct{}{},
		subs:         map[chan Event]struct{}{},
		pool:         newClientPool(opts.Workers),
		data:         newDataBudget(int64(opts.MaxDataInFlight)*2*(opts.MaxMessageBytes+dataStep), opts.MaxDataPerSource),
		callout:      newCalloutCache(),
		sizes:        newSizeCache(),
	}
	if r.opts.OldServer == nil {
		r.opts.OldServer = r.storeOldServer
	}
	if r.opts.Dial == nil {
		r.opts.Dial = DialOldServer
	}
	if r.opts.Routes == nil {
		r.opts.Routes = StoreRoute(opts.Store)
	}
	r.resolver = r.opts.Resolver
	if r.resolver == nil {
		r.resolver = net.DefaultResolver
	}
	r.sts = newSTSCache(r)
	return r, nil
}

// def sets an Options field that is zero or negative to its default v.
func def[T int | int64 | time.Duration](d *T, v T) {
	if *d <= 0 {
		*d = v
	}
}

type listenerMode int

const (
	modeMX         listenerMode = iota // port 25: inbound
	modeSubmission                     // 587 / 465: AUTH required
)

// receivedHeadroom is kept free of an old server's SIZE for the Received
// header we prepend (a HELO name and a recipient of at most 255 bytes
// each, our host name, the rest is short).
const receivedHeadroom = 1024

// maxMessageBytes is the SIZE limit a new connection is offered: the
// smaller of Options.MaxMessageBytes and the smallest SIZE an old server
// announced lately, less receivedHeadroom.
func (r *Relay) maxMessageBytes() int64 {
	m := r.opts.MaxMessageBytes
	if old := r.sizes.min(); old > 0 {
		old -= receivedHeadroom
		if old < 1 {
			old = 1
		}
		if old < m {
			m = old
		}
	}
	return m
}

// newServer is the go-smtp server of one connection: go-smtp reads
// MaxMessageBytes from its Server (for EHLO's SIZE, MAIL's SIZE= and DATA)
// without a lock, so a connection gets its own Server with the limit of
// the moment.
func (r *Relay) newServer(mode listenerMode) *smtp.Server {
	s := smtp.NewServer(&backend{r: r, mode: mode})
	s.Domain = r.opts.Hostname
	s.TLSConfig = r.opts.TLSConfig
	s.MaxMessageBytes = r.maxMessageBytes()
	s.MaxRecipients = r.opts.MaxRecipients
	s.ReadTimeout = r.opts.ReadTimeout
	s.WriteTimeout = r.opts.WriteTimeout
	s.EnableSMTPUTF8 = true
	// AUTH is advertised and accepted only under TLS by the session itself
	// (AuthMechanisms, Auth), which answers 538 rather than go-smtp's 523.
	s.AllowInsecureAuth = true
	s.ErrorLog = slogPrintf{r.log}
	return s
}

func (r *Relay) serve(ln net.Listener, mode listenerMode, implicitTLS bool) error {
	r.mu.Lock()
	if r.isClosed {
		r.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	r.listeners[ln] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, ln)
		r.mu.Unlock()
	}()
	// The limit sits under TLS so that go-smtp sees the *tls.Conn itself.
	l := r.opts.Auth.Listener(ln, r.opts.MaxConnsPerIP, "421 4.7.0 Too many connections from your address, try again later\r\n")
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-r.closed:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		one := &oneConnListener{c: c, done: make(chan struct{})}
		c = &notifyConn{Conn: c, l: one}
		if implicitTLS {
			c = tls.Server(c, r.opts.TLSConfig)
		}
		one.c = c
		s := r.newServer(mode)
		r.mu.Lock()
		if r.isClosed {
			r.mu.Unlock()
			c.Close()
			return nil
		}
		r.servers[s] = struct{}{}
		r.mu.Unlock()
		go func() {
			defer recoverPanic(r.log, "SMTP connection")
			defer func() {
				r.mu.Lock()
				delete(r.servers, s)
				r.mu.Unlock()
			}()
			s.Serve(one)
		}()
	}
}

// oneConnListener hands one connection to a go-smtp Server; its next
// Accept waits until that connection or the listener is closed, so that
// Serve returns only when the connection is over.
type oneConnListener struct {
	c     net.Conn
	taken bool // only Serve's goroutine calls Accept
	done  chan struct{}
	once  sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.taken {
		l.taken = true
		return l.c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// notifyConn closes its oneConnListener when it is closed (under TLS,
// tls.Conn.Close closes it).
type notifyConn struct {
	net.Conn
	l *oneConnListener
}

func (c *notifyConn) Close() error {
	c.l.Close()
	return c.Conn.Close()
}

// ServeSMTP serves inbound SMTP (RFC 5321, the MX side, usually port 25) on
// ln until Close. STARTTLS is offered when Options.TLSConfig is set.
func (r *Relay) ServeSMTP(ln net.Listener) error {
	return r.serve(ln, modeMX, false)
}

// ServeSubmission serves message submission (RFC 6409, usually port 587)
// with STARTTLS (RFC 3207) on ln until Close. Mail is accepted only after
// AUTH, and AUTH only under TLS.
func (r *Relay) ServeSubmission(ln net.Listener) error {
	if r.opts.TLSConfig == nil {
		ln.Close()
		return errors.New("relay: submission needs Options.TLSConfig")
	}
	return r.serve(ln, modeSubmission, false)
}

// ServeSubmissionTLS serves message submission over implicit TLS (RFC 8314,
// usually port 465) on ln until Close.
func (r *Relay) ServeSubmissionTLS(ln net.Listener) error {
	if r.opts.TLSConfig == nil {
		ln.Close()
		return errors.New("relay: submission needs Options.TLSConfig")
	}
	return r.serve(ln, modeSubmission, true)
}

// Close stops the listeners and cuts their connections (a message whose
// commit is under way is finished first), stops the queue worker after the
// deliveries in progress ended (cut after Options.ShutdownGrace) and waits
// for Run to return. The store is left open.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.isClosed = true
		servers := r.servers
		r.servers = nil
		listeners := r.listeners
		r.listeners = nil
		r.mu.Unlock()
		close(r.closed)
		for ln := range listeners {
			ln.Close()
		}
		for s := range servers {
			s.Close()
		}
		timer := time.AfterFunc(r.opts.ShutdownGrace, func() { close(r.hardStop) })
		r.dataWG.Wait()
		r.runWG.Wait()
		timer.Stop()
		r.pool.close()
		r.sts.close()
		r.mu.Lock()
		for c := range r.subs {
			close(c)
		}
		r.subs = map[chan Event]struct{}{}
		r.mu.Unlock()
	})
	return nil
}

// Stats returns the counters since New.
func (r *Relay) Stats() Stats {
	return Stats{
		Accepted:  r.accepted.Load(),
		Queued:    r.queued.Load(),
		Delivered: r.delivered.Load(),
		Relayed:   r.relayed.Load(),
		Deferred:  r.deferred.Load(),
		Bounced:   r.bounced.Load(),
		Dropped:   r.dropped.Load(),
		Rejected:  r.rejected.Load(),
	}
}

// Subscribe returns a channel of events and a function that ends the
// subscription. Events are dropped when the channel (of capacity buffer,
// at least 1) is full; Stats stay exact. The channel is closed by cancel
// or Close.
func (r *Relay) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer < 1 {
		buffer = 1
	}
	c := make(chan Event, buffer)
	r.mu.Lock()
	if r.isClosed {
		r.mu.Unlock()
		close(c)
		return c, func() {}
	}
	r.subs[c] = struct{}{}
	r.mu.Unlock()
	return c, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[c]; ok {
			delete(r.subs, c)
			close(c)
		}
	}
}

func (r *Relay) emit(e Event) {
	e.Time = time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.subs {
		select {
		case c <- e:
		default:
		}
	}
}

func (r *Relay) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// recoverPanic logs a panic to log with its stack; deferred directly at the
// top of every goroutine the Relay owns.
func recoverPanic(log *slog.Logger, what string) {
	if v := recover(); v != nil {
		log.Error("panic", "in", what, "panic", v, "stack", string(debug.Stack()))
	}
}

func (r *Relay) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range r.opts.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// slogPrintf adapts a slog.Logger to go-smtp's Logger.
type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	if strings.HasPrefix(format, "panic") {
		s.l.Error(fmt.Sprintf(format, v...))
		return
	}
	s.l.Debug(fmt.Sprintf(format, v...))
}
func (s slogPrintf) Println(v ...any) { s.l.Debug(fmt.Sprint(v...)) }
