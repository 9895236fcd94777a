package pop3front

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"mailferry/core/auth"
	"mailferry/core/internal/renew"
	"mailferry/core/store"
)

// Options configures a Server. Store and Auth are required.
type Options struct {
	// Store is the mail store served; required.
	Store *store.Store
	// Auth is the login policy, shared with the other front ends; required.
	Auth *auth.Policy
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// TLSConfig enables STLS on Serve and is needed by ServeTLS; nil means
	// no TLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows USER/PASS and AUTH PLAIN without TLS (for
	// loopback tests, or a server with no TLS at all).
	AllowInsecureAuth bool
	// Idle is how long a session may wait for a command before it is
	// closed; 0 means 10 minutes (RFC 1939 section 3's least autologout).
	Idle time.Duration
	// LoginTimeout bounds the time a connection may stay in the
	// AUTHORIZATION state, whatever it sends; 0 means 3 minutes (Dovecot's).
	LoginTimeout time.Duration
	// MaxConnsPerSource bounds the connections of one source; 0 means the
	// login policy's (auth.Options.MaxConnsPerSource).
	MaxConnsPerSource int
	// LockTTL is how long a session's maildrop lock lasts unless renewed;
	// 0 means 2 minutes. The lock is the store's (RFC 1939 section 8), so
	// that it holds across processes and nodes; a session renews it every
	// third of LockTTL, and a node that dies or freezes with a session
	// open leaves the account locked for LockTTL at most.
	LockTTL time.Duration
}

// Server is Mailferry's POP3 server.
type Server struct {
	st       *store.Store
	auth     *auth.Policy
	log      *slog.Logger
	tls      *tls.Config
	insecure bool
	idle     time.Duration
	login    time.Duration // Options.LoginTimeout
	maxConns int
	lockTTL  time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New makes a Server; it starts serving with Serve or ServeTLS.
func New(opts *Options) (*Server, error) {
	if opts == nil || opts.Store == nil || opts.Auth == nil {
		return nil, errors.New("pop3front: Options.Store and Options.Auth are required")
	}
	s := &Server{
		st: opts.Store, auth: opts.Auth, log: opts.Logger, tls: opts.TLSConfig,
		insecure: opts.AllowInsecureAuth, idle: opts.Idle, maxConns: opts.MaxConnsPerSource,
		lockTTL: cmp.Or(opts.LockTTL, 2*time.Minute), login: cmp.Or(opts.LoginTimeout, 3*time.Minute),
		lns: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.idle <= 0 {
		s.idle = 10 * time.Minute
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts POP3 connections on ln (port 110 style: STLS is offered
// when Options.TLSConfig is set). It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts implicit-TLS POP3 connections on ln (port 995,
// RFC 8314).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.tls == nil {
		return errors.New("pop3front: ServeTLS needs Options.TLSConfig")
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, implicit bool) error {
	ln = s.auth.Listener(ln, s.maxConns, "-ERR [SYS/TEMP] Too many connections from your address\r\n")
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
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
		if implicit {
			c = tls.Server(c, s.tls)
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		if afterTrack != nil {
			afterTrack()
		}
		go s.handle(c, implicit)
	}
}

// track records an open connection so that Close can end it and wait
// for its session; false after Close. The session is counted under the
// same lock that Close takes to set closed: counting it later would let
// Close's wait end with a session about to start (and race the counter's
// Add with its Wait).
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// afterTrack, when set (tests), runs between track and the start of the
// session.
var afterTrack func()

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handle runs one connection's session; a panic ends only this connection.
func (s *Server) handle(c net.Conn, implicit bool) {
	defer s.wg.Done()
	sess := &session{srv: s, conn: c, tls: implicit}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("pop3front: panic in session", "panic", v, "remote", c.RemoteAddr().String())
		}
		sess.release()
		sess.conn.Close()
		s.untrack(c)
	}()
	sess.run()
}

// Close stops all listeners and closes all connections, then waits
// (bounded) for their sessions to end. Marked messages of a session cut
// off this way are not removed (no QUIT).
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("pop3front: sessions still running after Close")
	}
	return nil
}

// newHolder names a session as the holder of a maildrop lock: random, so
// that no other session, process or node ever holds it under the same
// name.
func newHolder() string {
	var b [16]byte
	rand.Read(b[:])
	return "pop3 " + hex.EncodeToString(b[:])
}

// unlock gives a maildrop lock back. It is not bound to the server's
// context (cancelled by Close): a lock left behind would keep the account
// out of POP3 for LockTTL after a restart.
func (s *Server) unlock(account int64, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.st.UnlockMaildrop(ctx, account, holder); err != nil {
		s.log.Warn("pop3front: unlock maildrop", "account", account, "err", err)
	}
}

// keepLock renews the session's maildrop lock every third of its TTL
// until the returned func is called (which waits for the renewal to
// stop). A renewal that finds the lock gone (the account was deleted,
// perhaps made again under the same ID) or taken by another session (this
// one's lapsed: the node froze) ends the session's connection: it may no
// longer act on the maildrop. A renewal that fails
// otherwise is tried again at the next tick.
func (s *session) keepLock(address string) (stop func()) {
	ctx, cancel := context.WithCancel(s.ctx())
	done := make(chan struct{})
	conn, acct, holder, ttl := s.conn, s.acct, s.holder, s.srv.lockTTL
	go func() {
		defer close(done)
		renew.Every(ctx, ttl/3, func() bool {
			err := s.srv.st.RenewMaildrop(ctx, acct, holder, ttl)
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, store.ErrMaildropLocked):
				s.srv.log.Warn("pop3front: maildrop lock lost; session ended", "account", address, "err", err)
				conn.Close()
				return false
			default:
				s.srv.log.Warn("pop3front: renew maildrop lock", "account", address, "err", err)
			}
			return true
		})
	}()
	return func() { cancel(); <-done }
}
