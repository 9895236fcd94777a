package demo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-smtp"
)

// DefaultDomain is the mail domain served when Options.Domain is empty.
const DefaultDomain = "example.test"

// Delimiter is the default IMAP hierarchy separator of the demo server
// (Options.Delimiter).
const Delimiter = '/'

// MasterSeparator separates the user from the master user in a master
// LOGIN name, "user*master" (as Dovecot's auth_master_user_separator).
const MasterSeparator = "*"

// MaxMessageBytes is the largest message the SMTP side accepts (advertised as
// SIZE, RFC 1870) and the APPENDLIMIT of the IMAP side.
const MaxMessageBytes = 25 << 20

// closeTimeout bounds how long Close waits for connections to wind down.
const closeTimeout = 10 * time.Second

// User is a demo mail account: its address (also its IMAP login) and password.
type User struct {
	Address  string
	Password string
}

// Options configures Start. A nil *Options, and every zero field, means the
// default.
type Options struct {
	// Domain is the mail domain of the demo users. Default DefaultDomain.
	Domain string
	// Users maps each address (of Domain) to its password. Nil means
	// DefaultUsers(Domain).
	Users map[string]string
	// CatchAll is the address that receives mail relayed to other domains.
	// Default "catchall@" + Domain; it is added as a user with the password
	// "catchall" when Users lacks it.
	CatchAll string
	// Seed fills the mailboxes with realistic mail (see README.md): INBOX,
	// Sent, Drafts and Trash with two or three messages for every user but the
	// catch-all, and for one account (Server.SeedAccount, normally alice@) a
	// rich set of folders, flags, dates, zones and charsets (SeedFolders,
	// SeedMessages). Without Seed every user has an empty INBOX only.
	Seed bool
	// IMAPAddr, SMTPAddr and POP3Addr are the loopback addresses to
	// listen on. Default "127.0.0.1:0" (a port picked by the OS).
	IMAPAddr, SMTPAddr, POP3Addr string
	// DisableTLS turns STARTTLS off on both protocols. By default a
	// self-signed certificate is generated at Start and offered with STARTTLS.
	DisableTLS bool
	// Logger receives the server's log. Nil discards it.
	Logger *slog.Logger
	// Delimiter is the IMAP hierarchy separator: '/' (default when 0) or
	// '.'. The rich seed (Seed) needs '/'.
	Delimiter rune
	// LocalPartLogin also accepts the local part of an address as its IMAP
	// login name ("alice" for alice@Domain), as many servers do.
	LocalPartLogin bool
	// IgnoreDomain logs "alice@any.domain" in as alice@Domain, as a server
	// that drops the domain of user names does (Dovecot
	// auth_username_format=%n, PAM): for tests of such servers.
	IgnoreDomain bool
	// MasterUser and MasterPassword, if set, log in as any user: LOGIN
	// "user*MasterUser" (MasterSeparator) or AUTHENTICATE PLAIN with
	// authzid=user and authcid=MasterUser (RFC 4616), as a Dovecot master
	// user does. The master user is not a mail account.
	MasterUser, MasterPassword string
	// BareLoginOnly accepts only the local part of an address as the IMAP
	// login name ("alice", never "alice@Domain"), as a single-domain
	// server that wants bare user names does.
	BareLoginOnly bool
	// LoginFailDelay delays the answer to a failed login by that long, as
	// servers do against password guessing (Dovecot's auth_failure_delay,
	// 2 s by default; some wait 5 s).
	LoginFailDelay time.Duration
	// MaxConnsPerIP, if above 0, caps the IMAP connections open at once
	// from one IP address (Courier's MAXPERIP, Dovecot's
	// mail_max_userip_connections): one more is greeted with
	// "* BYE Too many connections from your IP address" and closed, or,
	// with CapDrop, closed before any greeting.
	MaxConnsPerIP int
	// CapDrop makes MaxConnsPerIP close an extra connection without a
	// greeting, as servers behind a connection limiter (xinetd
	// per_source, a firewall) do.
	CapDrop bool
	// Unservable, if set, names messages the server cannot serve, as a
	// server with a damaged message file: a UID FETCH of the body of a
	// message for which Unservable(address, mailbox, uid) is true is
	// answered "NO [SERVERBUG] Message file is damaged" (for tests of
	// copies that go on without it).
	Unservable func(address, mailbox string, uid imap.UID) bool
}

// DefaultUsers returns the default demo users of domain and their passwords:
// alice, bob, carol and catchall.
func DefaultUsers(domain string) map[string]string {
	if domain == "" {
		domain = DefaultDomain
	}
	return map[string]string{
		"alice@" + domain:    "alice-demo-pw",
		"bob@" + domain:      "bob-demo-pw",
		"carol@" + domain:    "carol-demo-pw",
		"catchall@" + domain: "catchall",
	}
}

// Server is a running demo server. Its methods are safe for concurrent use.
type Server struct {
	domain   string
	catchAll string
	richAddr string // the account with the rich seed, or ""
	log      *slog.Logger

	delim                      rune
	localPartLogin             bool
	ignoreDomain               bool
	masterUser, masterPassword string
	bareLoginOnly              bool
	loginFailDelay             time.Duration
	unservable                 func(address, mailbox string, uid imap.UID) bool
	connCap                    *connCap // nil without Options.MaxConnsPerIP
	failedLogins               atomic.Int64

	accounts map[string]*account // by lower-case address; immutable after Start

	imapLn, smtpLn, pop3Ln *trackingListener
	imapSrv                *imapserver.Server
	smtpSrv                *smtp.Server
	cert                   *tls.Certificate
	fingerprint            string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines started by goSafe

	sessMu   sync.Mutex
	stopping bool           // set by shutdown; no new sessions afterwards
	sessions sync.WaitGroup // live IMAP and SMTP sessions

	closeOnce sync.Once
	closeErr  error
}

// Start seeds the accounts and starts the IMAP and SMTP listeners. The server
// runs until Close is called or ctx is done.
func Start(ctx context.Context, opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	o.Domain = strings.ToLower(o.Domain)
	if o.Users == nil {
		o.Users = DefaultUsers(o.Domain)
	}
	if o.CatchAll == "" {
		o.CatchAll = "catchall@" + o.Domain
	}
	if o.IMAPAddr == "" {
		o.IMAPAddr = "127.0.0.1:0"
	}
	if o.SMTPAddr == "" {
		o.SMTPAddr = "127.0.0.1:0"
	}
	if o.POP3Addr == "" {
		o.POP3Addr = "127.0.0.1:0"
	}
	switch o.Delimiter {
	case 0:
		o.Delimiter = Delimiter
	case '/', '.':
	default:
		return nil, fmt.Errorf("demo: delimiter %q: want '/' or '.'", o.Delimiter)
	}
	if o.Seed && o.Delimiter != '/' {
		return nil, errors.New("demo: the seed needs the '/' delimiter")
	}
	if (o.MasterUser == "") != (o.MasterPassword == "") || strings.ContainsAny(o.MasterUser, "@"+MasterSeparator) {
		return nil, errors.New("demo: a master user needs a password, and its name no @ or " + MasterSeparator)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	s := &Server{
		domain:   o.Domain,
		catchAll: strings.ToLower(o.CatchAll),
		log:      logger.With("component", "demo"),
		accounts: make(map[string]*account),

		delim:          o.Delimiter,
		localPartLogin: o.LocalPartLogin,
		ignoreDomain:   o.IgnoreDomain,
		masterUser:     o.MasterUser,
		masterPassword: o.MasterPassword,
		bareLoginOnly:  o.BareLoginOnly,
		loginFailDelay: o.LoginFailDelay,
		unservable:     o.Unservable,
	}
	if o.MaxConnsPerIP < 0 || o.LoginFailDelay < 0 {
		return nil, errors.New("demo: MaxConnsPerIP and LoginFailDelay cannot be negative")
	}
	if o.MaxConnsPerIP > 0 {
		s.connCap = newConnCap(o.MaxConnsPerIP, o.CapDrop)
	}
	for addr, pw := range o.Users {
		if err := s.addAccount(addr, pw); err != nil {
			return nil, err
		}
	}
	if _, ok := s.accounts[s.catchAll]; !ok {
		if err := s.addAccount(s.catchAll, "catchall"); err != nil {
			return nil, err
		}
	}
	if err := s.seed(o.Seed); err != nil {
		return nil, fmt.Errorf("demo: seed: %w", err)
	}

	var tlsConfig *tls.Config
	if !o.DisableTLS {
		cert, fp, err := selfSignedCert(time.Now())
		if err != nil {
			return nil, fmt.Errorf("demo: certificate: %w", err)
		}
		s.cert, s.fingerprint = cert, fp
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}

	imapLn, err := listenLoopback(o.IMAPAddr)
	if err != nil {
		return nil, fmt.Errorf("demo: IMAP: %w", err)
	}
	smtpLn, err := listenLoopback(o.SMTPAddr)
	if err != nil {
		imapLn.Close()
		return nil, fmt.Errorf("demo: SMTP: %w", err)
	}
	pop3Ln, err := listenLoopback(o.POP3Addr)
	if err != nil {
		imapLn.Close()
		smtpLn.Close()
		return nil, fmt.Errorf("demo: POP3: %w", err)
	}
	s.imapLn, s.smtpLn, s.pop3Ln = imapLn, smtpLn, pop3Ln

	s.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: s.newIMAPSession,
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
			imap.CapAppendLimit:      {},
		},
		Logger:       printfLogger{s.log.With("proto", "imap")},
		TLSConfig:    tlsConfig,
		InsecureAuth: true, // loopback only
	})

	smtpSrv := smtp.NewServer(smtp.BackendFunc(s.newSMTPSession))
	smtpSrv.Domain = "mail." + s.domain
	smtpSrv.TLSConfig = tlsConfig
	smtpSrv.MaxMessageBytes = MaxMessageBytes
	smtpSrv.MaxRecipients = 100
	smtpSrv.AllowInsecureAuth = true // loopback only
	smtpSrv.EnableSMTPUTF8 = true
	smtpSrv.ReadTimeout = 5 * time.Minute
	smtpSrv.WriteTimeout = 5 * time.Minute
	smtpSrv.ErrorLog = printfLogger{s.log.With("proto", "smtp")}
	s.smtpSrv = smtpSrv

	s.ctx, s.cancel = context.WithCancel(ctx)
	s.goSafe("imap-serve", func(ctx context.Context) {
		if err := s.imapSrv.Serve(imapLn); err != nil && !s.stopped(err) {
			s.log.Error("IMAP server stopped", "err", err)
		}
	})
	s.goSafe("smtp-serve", func(ctx context.Context) {
		if err := s.smtpSrv.Serve(smtpLn); err != nil && !s.stopped(err) {
			s.log.Error("SMTP server stopped", "err", err)
		}
	})
	s.goSafe("pop3-serve", s.servePOP3)
	s.goSafe("ctx-watch", func(ctx context.Context) {
		<-ctx.Done()
		s.shutdown()
	})
	s.log.Info("demo server started", "imap", s.IMAPAddr(), "smtp", s.SMTPAddr(), "pop3", s.POP3Addr(), "domain", s.domain, "seed", o.Seed)
	return s, nil
}

func (s *Server) addAccount(addr, password string) error {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return fmt.Errorf("demo: invalid user address %q", addr)
	}
	if addr[at+1:] != s.domain {
		return fmt.Errorf("demo: user %q is not in domain %q", addr, s.domain)
	}
	if password == "" {
		return fmt.Errorf("demo: user %q has an empty password", addr)
	}
	s.accounts[addr] = newAccount(addr, password, s.delim)
	return nil
}

// account returns the account of address (case-insensitive), or nil.
func (s *Server) account(address string) *account {
	return s.accounts[strings.ToLower(address)]
}

// loginAccount returns the account an IMAP login name names: an address
// (case-insensitive) or, with Options.LocalPartLogin, a local part of Domain;
// with Options.BareLoginOnly a local part only.
func (s *Server) loginAccount(name string) *account {
	if at := strings.LastIndexByte(name, '@'); at >= 0 && s.ignoreDomain {
		name = name[:at] + "@" + s.domain
	}
	if s.bareLoginOnly {
		if strings.Contains(name, "@") {
			return nil
		}
		return s.account(name + "@" + s.domain)
	}
	if !strings.Contains(name, "@") {
		if !s.localPartLogin {
			return nil
		}
		name += "@" + s.domain
	}
	return s.account(name)
}

// Delimiter returns the IMAP hierarchy separator.
func (s *Server) Delimiter() rune { return s.delim }

// Domain returns the mail domain of the demo users.
func (s *Server) Domain() string { return s.domain }

// CatchAll returns the address that receives mail relayed to other domains.
func (s *Server) CatchAll() string { return s.catchAll }

// SeedAccount returns the address of the account that holds the rich seed
// data (SeedMessages, SeedFolders): alice@domain if it is a user, else the
// first other non-catch-all user; "" without Options.Seed.
func (s *Server) SeedAccount() string { return s.richAddr }

// IMAPAddr returns the IMAP listener's address, "127.0.0.1:port".
func (s *Server) IMAPAddr() string { return s.imapLn.Addr().String() }

// SMTPAddr returns the SMTP listener's address, "127.0.0.1:port".
func (s *Server) SMTPAddr() string { return s.smtpLn.Addr().String() }

// Users returns the demo users sorted by address.
func (s *Server) Users() []User {
	users := make([]User, 0, len(s.accounts))
	for _, a := range s.accounts {
		users = append(users, User{Address: a.addr, Password: a.password})
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Address < users[j].Address })
	return users
}

// TLSEnabled reports whether STARTTLS is offered on both protocols.
func (s *Server) TLSEnabled() bool { return s.cert != nil }

// CertFingerprint returns the SHA-256 fingerprint of the self-signed
// certificate's DER bytes as lower-case hex without separators, or "" when
// TLS is disabled.
func (s *Server) CertFingerprint() string { return s.fingerprint }

// CertificateDER returns the self-signed certificate in DER form, or nil when
// TLS is disabled.
func (s *Server) CertificateDER() []byte {
	if s.cert == nil {
		return nil
	}
	return s.cert.Certificate[0]
}

// Close stops both listeners, closes every connection and waits for the
// server's goroutines and sessions to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.shutdown()
	s.wg.Wait()
	return s.closeErr
}

// shutdown stops everything and waits for connections; it runs once.
func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		s.cancel()
		var errs []error
		if err := s.imapSrv.Close(); err != nil && !s.stopped(err) {
			errs = append(errs, fmt.Errorf("IMAP: %w", err))
		}
		if err := s.smtpSrv.Close(); err != nil && !s.stopped(err) {
			errs = append(errs, fmt.Errorf("SMTP: %w", err))
		}
		// go-smtp's Close misses a listener whose Serve has not registered
		// it yet (Serve would then block in Accept forever), and both
		// libraries miss a connection accepted but not yet registered: close
		// our listeners and every connection they handed out too.
		s.imapLn.closeAll()
		s.smtpLn.closeAll()
		s.pop3Ln.closeAll()
		s.sessMu.Lock()
		s.stopping = true
		s.sessMu.Unlock()
		// Wait until every session is released, bounded so a stuck handler
		// cannot hang Close. The waiter ends with the last session; it can
		// outlive Close only in the timeout case, which is reported.
		done := make(chan struct{})
		go func() {
			s.imapLn.wg.Wait()
			s.smtpLn.wg.Wait()
			s.pop3Ln.wg.Wait()
			s.sessions.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			errs = append(errs, errors.New("connections still open after close timeout"))
		}
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("demo: close: %w", errors.Join(errs...))
		}
		s.log.Info("demo server stopped")
	})
}

// sessionStart counts a new IMAP or SMTP session; it reports false once the
// server is shutting down. Each true must be matched by sessions.Done.
func (s *Server) sessionStart() bool {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.stopping {
		return false
	}
	s.sessions.Add(1)
	return true
}

// goSafe runs fn in a goroutine owned by s: it gets s's context, Close waits
// for it, and a panic is logged with its stack instead of crashing.
func (s *Server) goSafe(name string, fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.recoverPanic(name)
		fn(s.ctx)
	}()
}

// recoverPanic logs a panic with its stack. It must be deferred directly.
func (s *Server) recoverPanic(where string) {
	if v := recover(); v != nil {
		s.recoverValue(where, v)
	}
}

// recoverValue logs a recovered panic value with the current stack.
func (s *Server) recoverValue(where string, v any) {
	s.log.Error("panic", "where", where, "panic", v, "stack", string(debug.Stack()))
}

// stopped reports whether err ends a Serve or Close because the server is
// shutting down: a closed listener, go-smtp's ErrServerClosed, or any error
// once shutdown has begun (go-imap's "server closed" is not exported).
func (s *Server) stopped(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) || s.ctx.Err() != nil
}

// printfLogger adapts slog to the Printf loggers of go-imap and go-smtp.
type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(format string, v ...any) {
	p.l.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (p printfLogger) Println(v ...any) {
	p.l.Warn(strings.TrimSpace(fmt.Sprintln(v...)))
}
