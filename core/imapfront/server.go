// Package imapfront is Mailferry's IMAP server (RFC 3501 IMAP4rev1 with
// UIDPLUS, MOVE, IDLE, NAMESPACE, LIST-EXTENDED, LIST-STATUS, SPECIAL-USE,
// ESEARCH, SEARCHRES, CONDSTORE, QRESYNC, SORT, THREAD, LITERAL+, BINARY,
// STARTTLS and implicit TLS per RFC 8314), built on go-imap v2's imapserver
// (a fork: core/third_party/go-imap/FORK.md) and backed by core/store.
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
//     mailbox's MODSEQ: only the rows changed since and the UIDs expunged
//     since are read (store.Delta), checked against the message count.
//   - Every message has a MODSEQ and every expunge is remembered with its
//     MODSEQ (RFC 7162); a STORE with UNCHANGEDSINCE tests and changes in one
//     store transaction. After ENABLE QRESYNC a client is told of expunges
//     by VANISHED, never by EXPUNGE.
//   - Logins go through the one login policy (core/auth): canonical
//     addresses, rate limits that slow the attacker and not the owner,
//     bounded hashing, connections per source bounded. A password is never
//     logged.
//   - Mailbox names are UTF-8 in the store; go-imap turns them into modified
//     UTF-7 on the wire (RFC 3501 5.1.3), or keeps them UTF-8 for a client
//     that enabled UTF8=ACCEPT (RFC 6855).
//   - The one change to stored bytes on the wire: a NUL, which an IMAP
//     literal cannot carry, is sent as 0x80 in BODY[] (as Dovecot);
//     BINARY[] sends the exact bytes in a literal8 (RFC 3516).
//   - \Recent is a session's, never stored as a flag: each message is
//     recent to one session only (recent.go). A keyword a client was not
//     told of is announced with FLAGS before any FETCH shows it
//     (keywords.go). Every APPEND, of one message or several (MULTIAPPEND),
//     commits all its messages or none (extensions.go).
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
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// Migrator is the migration engine as the login policy sees it
// (auth.Migrator).
type Migrator = auth.Migrator

// LoginRateLimit bounds failed logins when Options.Auth is nil (see
// auth.Options, which these fields set). The zero value means the
// defaults.
type LoginRateLimit struct {
	// PerIP is the number of failures a source (an IPv4 address, an IPv6
	// /64) may have in a row; 0 means 20.
	PerIP int
	// PerUser is the number of failures an account may have in a row from
	// one source; 0 means 10.
	PerUser int
	// Refill is the time after which one more attempt is granted; 0 means
	// one minute.
	Refill time.Duration
	// Delay is how long after it began a failed login is answered
	// (auth.Options.Delay); 0 means 3 seconds, a negative value none.
	Delay time.Duration
}

// Options configures a Server. Store is required.
type Options struct {
	// Store is the mail store served; required.
	Store *store.Store
	// Auth is the login policy; nil means one made from Store, Migrator
	// and LoginRateLimit.
	Auth *auth.Policy
	// Migrator handles first logins of unknown users when Auth is nil; nil
	// means none (an unknown user simply fails to log in).
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
	// LoginRateLimit bounds failed logins when Auth is nil.
	LoginRateLimit LoginRateLimit
	// LoginTimeout bounds the time a connection may stay without logging
	// in, whatever it sends; 0 means 3 minutes (Dovecot's), negative none.
	LoginTimeout time.Duration
}

// Server is Mailferry's IMAP server.
type Server struct {
	st        *store.Store
	auth      *auth.Policy
	log       *slog.Logger
	tls       *tls.Config
	limit     uint32
	imap      *imapserver.Server
	ctx       context.Context
	cancel    context.CancelFunc
	sessions  sync.WaitGroup
	open      atomic.Int64 // sessions begun and not closed (tests)
	closeOnce sync.Once
	// selects is the mailboxes' states the last SELECTs read (selcache.go).
	selects *selectCache
	// appending bounds the APPENDed bytes sessions hold (appendmem.go).
	appending *appendMem
}

// New makes a Server; it starts serving with Serve or ServeTLS.
func New(opts *Options) (*Server, error) {
	if opts == nil || opts.Store == nil {
		return nil, errors.New("imapfront: Options.Store is required")
	}
	s := &Server{
		st:      opts.Store,
		auth:    opts.Auth,
		log:     opts.Logger,
		tls:     opts.TLSConfig,
		limit:   opts.AppendLimit,
		selects: newSelectCache(selectCacheBudget),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.limit == 0 {
		s.limit = 64 << 20
	}
	s.appending = newAppendMem(s.limit)
	if s.auth == nil {
		rl := opts.LoginRateLimit
		var err error
		s.auth, err = auth.New(auth.Options{Store: opts.Store, Migrator: opts.Migrator, Logger: s.log,
			PerSource: rl.PerIP, PerAccount: rl.PerUser, Refill: rl.Refill, Delay: rl.Delay})
		if err != nil {
			return nil, err
		}
	}
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
			imap.CapID:               {},
			imap.CapMultiAppend:      {},
			imap.CapCatenate:         {},
			imap.CapCondStore:        {},
			imap.CapQResync:          {},
			imap.CapSort:             {},
			imap.CapSortDisplay:      {},
			imap.CapESort:            {},
			"THREAD=ORDEREDSUBJECT":  {},
			"THREAD=REFERENCES":      {},
			"THREAD=REFS":            {},
			imap.CapWithin:           {},
			imap.CapPreview:          {},
			imap.CapContextSearch:    {},
			imap.CapSaveDate:         {},
		},
		Logger:       printfLogger{s.log},
		TLSConfig:    opts.TLSConfig,
		InsecureAuth: opts.AllowInsecureAuth,
		LoginTimeout: opts.LoginTimeout,
	})
	return s, nil
}

// Serve accepts IMAP connections on ln (port 143 style: STARTTLS is offered
// when Options.TLSConfig is set). It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.imap.Serve(coalescingListener{Listener: hangupListener{Listener: s.limitConns(ln), ctx: s.ctx}, log: s.log})
}

// limitConns bounds the connections of one source (auth.Policy.Listener).
func (s *Server) limitConns(ln net.Listener) net.Listener {
	return s.auth.Listener(ln, 0, "* BYE [UNAVAILABLE] Too many connections from your address\r\n")
}

// ServeTLS accepts implicit-TLS IMAP connections on ln (port 993, RFC 8314).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.tls == nil {
		return errors.New("imapfront: ServeTLS needs Options.TLSConfig")
	}
	return s.imap.Serve(tls.NewListener(coalescingListener{Listener: hangupListener{Listener: s.limitConns(ln), ctx: s.ctx}, log: s.log}, s.tls))
}

// Close stops all listeners and closes all connections.
func (s *Server) Close() error {
	s.cancel()
	// go-imap's Close fails (with an unexported error) only when called
	// twice: call it once.
	var err error
	s.closeOnce.Do(func() { err = s.imap.Close() })
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
