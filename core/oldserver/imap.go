package oldserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// ErrAuthFailed matches (errors.Is) every error that means the old server
// refused the user name or password. Network, TLS and protocol failures
// never match it.
var ErrAuthFailed = errors.New("oldserver: authentication failed (wrong user name or password)")

// DefaultTimeout bounds each step of a dial (connect, TLS handshake,
// greeting, STARTTLS) when DialOptions.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// ErrNoStartTLS matches (errors.Is) a server that refused or does not
// offer STARTTLS (RFC 9051 §6.2.1, RFC 3207) when the settings ask for it.
var ErrNoStartTLS = errors.New("oldserver: the server refused STARTTLS (or does not offer it)")

// DialOptions tune DialIMAP, DialSMTP and Probe. A nil *DialOptions means
// all defaults.
type DialOptions struct {
	// Timeout bounds connecting plus the TLS handshake and greeting; 0 means
	// DefaultTimeout. The context can cut it shorter.
	Timeout time.Duration
	// RootCAs replaces the system roots for certificate verification (tests
	// use it; nil means the system roots).
	RootCAs *x509.CertPool
	// LocalName is the name sent in SMTP EHLO; empty means this machine's
	// host name if it is fully qualified, else "localhost".
	LocalName string
	// ReadStall bounds the old server's silence while an IMAP answer is
	// awaited (also in the middle of a message's bytes): a connection
	// silent that long fails with a timeout, so that the copy replaces it.
	// 0 means DefaultReadStall; negative keeps go-imap's own timeouts
	// (30 s per response, 5 minutes per literal).
	ReadStall time.Duration
	// IMAP are options for the go-imap client (e.g. UnilateralDataHandler).
	// Its TLSConfig and Dialer are ignored: Settings decide those. Its
	// DebugWriter would see passwords: never point it at a log.
	IMAP *imapclient.Options
}

func (o *DialOptions) timeout() time.Duration {
	if o == nil || o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o *DialOptions) roots() *x509.CertPool {
	if o == nil {
		return nil
	}
	return o.RootCAs
}

// DialError is a failure to reach an old server or to set up the session.
type DialError struct {
	// Proto is "IMAP" or "SMTP".
	Proto string
	// Addr is the host:port dialed.
	Addr string
	// Op is the step that failed: "connect", "tls" (handshake),
	// "starttls", or "greeting".
	Op string
	// Err is the cause; a *CertError for an untrusted certificate.
	Err error
}

// Error implements error; it says in plain words what went wrong.
func (e *DialError) Error() string {
	return fmt.Sprintf("oldserver: %s %s: %s: %s", e.Proto, e.Addr, e.Op, explainNet(e.Err))
}

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// dialError is the *DialError of a failed setup step under sctx: a timeout
// or cancellation shows in it even when what failed first was a read on
// the connection it closed.
func dialError(sctx context.Context, proto, addr, op string, err error) *DialError {
	if cerr := sctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return &DialError{Proto: proto, Addr: addr, Op: op, Err: err}
}

// explainNet turns common network errors into plain words, keeping the
// original text.
func explainNet(err error) string {
	if ta := (*turnedAway)(nil); errors.As(err, &ta) {
		return ta.Error()
	}
	var ce *CertError
	var dnsErr *net.DNSError
	var re tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &ce):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time (" + err.Error() + "); is the port right and not filtered by a firewall?"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens on that port (" + err.Error() + ")"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the host cannot be reached (" + err.Error() + ")"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "the host name does not exist in DNS (" + err.Error() + ")"
		}
		return "the host name could not be looked up (" + err.Error() + ")"
	case errors.As(err, &re):
		return "the server did not answer with TLS: is this port plaintext (use starttls or none)? (" + err.Error() + ")"
	case errors.As(err, &alert):
		return "the server refused the TLS handshake (" + err.Error() + "); it may only support old TLS versions"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, net.ErrClosed), hasAny(err.Error(), "connection closed", "connection reset", "EOF", "closed network connection"):
		// (go-imap wraps some read errors with %v, so match the text too)
		return "the server closed the connection (" + err.Error() + ")"
	}
	return err.Error()
}

// DialIMAP connects to the old server's IMAP port as s says (TLS mode,
// certificate check) and waits for the greeting. Connecting, the TLS
// handshake and the greeting are bounded by ctx and opts.Timeout; once
// DialIMAP returns, ctx no longer affects the client. Failures are
// *DialError (with a *CertError inside for an untrusted certificate).
func DialIMAP(ctx context.Context, s Settings, opts *DialOptions) (*imapclient.Client, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return nil, err
	}
	return dialIMAP(ctx, s, opts, v)
}

// dialIMAP is DialIMAP with valid s and a verifier that records the TLS
// session (also when the certificate is refused).
func dialIMAP(ctx context.Context, s Settings, opts *DialOptions, v *verifier) (*imapclient.Client, error) {
	addr := s.Host.DialAddr(s.IMAPPort)
	sctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	fail := func(op string, err error) (*imapclient.Client, error) {
		return nil, dialError(sctx, "IMAP", addr, op, err)
	}

	var d net.Dialer
	raw, err := d.DialContext(sctx, "tcp", addr)
	if err != nil {
		return fail("connect", err)
	}
	// The first bytes the server sends tell a connection turned away (a
	// BYE greeting, or none at all) or another protocol on the port from
	// other failures; a server silent for ReadStall fails the read.
	var stall time.Duration
	if opts != nil {
		stall = opts.ReadStall
	}
	// Read ahead below everything else (readahead.go): fewer reads from
	// the socket, each still bounded by the stall.
	conn := &bannerConn{Conn: newReadAheadConn(newStallConn(raw, stall))}
	// Until setup is done, a canceled context or the timeout closes the
	// connection, which unblocks every read below.
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	var icOpts imapclient.Options
	if opts != nil && opts.IMAP != nil {
		icOpts = *opts.IMAP
	}
	icOpts.Dialer = nil
	icOpts.TLSConfig = nil

	var c *imapclient.Client
	switch s.IMAPTLS {
	case TLSImplicit:
		cfg := v.config()
		cfg.NextProtos = []string{"imap"}
		tconn := tls.Client(conn, cfg)
		if err := tconn.HandshakeContext(sctx); err != nil {
			conn.Close()
			return fail("tls", conn.turnedAway(sctx, handshakeError("IMAP", err)))
		}
		// The greeting is inside TLS: watch it there.
		conn = &bannerConn{Conn: tconn}
		c = imapclient.New(conn, &icOpts)
	case TLSStartTLS:
		icOpts.TLSConfig = v.config()
		c, err = imapclient.NewStartTLS(conn, &icOpts)
		if err != nil {
			conn.Close()
			if ta := conn.turnedAway(sctx, err); ta != err {
				return fail("starttls", ta)
			}
			var ierr *imap.Error
			if errors.As(err, &ierr) && protocolOf(conn.banner()) == "IMAP" {
				err = fmt.Errorf("%w: %w; try TLS mode %q or %q", ErrNoStartTLS, ierr, TLSImplicit, TLSNone)
			} else {
				err = greetingError("IMAP", conn.banner(), err, sctx.Err() != nil)
			}
			return fail("starttls", err)
		}
	default:
		c = imapclient.New(conn, &icOpts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		if ta := conn.turnedAway(sctx, err); ta != err {
			return fail("greeting", ta)
		}
		if s.IMAPTLS != TLSImplicit {
			err = greetingError("IMAP", conn.banner(), err, sctx.Err() != nil)
		}
		return fail("greeting", err)
	}
	stopped = true
	if !stop() {
		c.Close()
		return fail("greeting", sctx.Err())
	}
	return c, nil
}

// LoginInfo says which login the old server accepted.
type LoginInfo struct {
	// Name is the user name that was accepted (the target user for a master
	// login).
	Name string `json:"name"`
	// Form is the form of Name that worked (LoginFull or LoginLocal).
	Form LoginForm `json:"form"`
	// Master is the master-login form that worked; empty for Login.
	Master MasterForm `json:"master,omitempty"`
	// Refused is how long the server took to refuse the forms tried
	// before Name (0 when the first was accepted).
	Refused time.Duration `json:"refused,omitempty"`
}

// loginNames returns the names to try for user under s's LoginForm, with
// their forms. LoginAuto tries the bare local part only for an address of
// s.DefaultDomain (see Settings.DefaultDomain): after the full address, or
// before it where s.Learnt says the server wants bare names.
func loginNames(user string, s Settings) ([]string, []LoginForm) {
	at := strings.LastIndexByte(user, '@')
	if at < 0 {
		return []string{user}, []LoginForm{LoginLocal}
	}
	local := user[:at]
	switch s.LoginForm {
	case LoginLocal:
		return []string{local}, []LoginForm{LoginLocal}
	case LoginAuto:
		if s.DefaultDomain != "" && strings.EqualFold(strings.TrimSuffix(s.DefaultDomain, "."), user[at+1:]) {
			if l := s.Learnt.For(s); l != nil && l.LoginForm == LoginLocal {
				// Learnt: the server wants bare names (and may take
				// seconds to refuse a full address).
				return []string{local, user}, []LoginForm{LoginLocal, LoginFull}
			}
			return []string{user, local}, []LoginForm{LoginFull, LoginLocal}
		}
	}
	return []string{user}, []LoginForm{LoginFull}
}

// Login logs c in as user (an address, "alice@example.org") with password,
// sending the name in the form s.LoginForm says; LoginAuto tries the full
// address, then, for an address of s.DefaultDomain only, the local part (many servers delay the answer to a failed
// try by seconds, and some penalize the next tries from the same address). It uses IMAP LOGIN, or AUTHENTICATE PLAIN when the
// server advertises LOGINDISABLED (RFC 9051 §6.2.3). A refused password
// matches ErrAuthFailed. ctx bounds the exchange: if it ends first, c is
// closed.
func Login(ctx context.Context, c *imapclient.Client, s Settings, user, password string) (LoginInfo, error) {
	if user == "" {
		return LoginInfo{}, errors.New("oldserver: login: empty user name")
	}
	names, forms := loginNames(user, s)
	var errs []error
	var start time.Time
	for i, name := range names {
		var tried time.Duration // refusing the forms before this one
		if i == 0 {
			start = time.Now()
		} else {
			tried = time.Since(start)
		}
		err := withContext(ctx, c, func() error { return login(c, name, password) })
		if err == nil {
			return LoginInfo{Name: name, Form: forms[i], Refused: tried}, nil
		}
		if !errors.Is(err, ErrAuthFailed) {
			return LoginInfo{}, err
		}
		errs = append(errs, err)
	}
	return LoginInfo{}, errors.Join(errs...)
}

func login(c *imapclient.Client, name, password string) error {
	caps := c.Caps()
	var err error
	switch {
	case !caps.Has(imap.CapLoginDisabled):
		err = c.Login(name, password).Wait()
	case caps.Has(imap.Cap("AUTH=PLAIN")):
		err = c.Authenticate(sasl.NewPlainClient("", name, password))
	default:
		return fmt.Errorf("oldserver: login as %q: the server forbids logins on this connection (LOGINDISABLED); use TLS mode %q or %q", name, TLSStartTLS, TLSImplicit)
	}
	return authError(err, name)
}

// LoginMaster logs c in as user through the master user s.MasterUser with
// the master password, in the form s.MasterForm says:
//
//   - MasterPlain: AUTHENTICATE PLAIN with authzid = user, authcid =
//     master user (RFC 4616 §2; Dovecot master users, Cyrus admins);
//   - MasterSeparator: LOGIN "user" + s.MasterSeparator + "master" (Dovecot
//     auth_master_user_separator, default "*");
//   - MasterAuto (or empty): MasterPlain if the server advertises AUTH=PLAIN,
//     then MasterSeparator.
//
// The user name form follows s.LoginForm as in Login. A refused master
// password, or a master user not allowed to act as user, matches
// ErrAuthFailed.
func LoginMaster(ctx context.Context, c *imapclient.Client, s Settings, user, masterPassword string) (LoginInfo, error) {
	if s.MasterUser == "" {
		return LoginInfo{}, &SettingsError{Field: "master_user", Problem: "no master user is configured"}
	}
	if user == "" {
		return LoginInfo{}, errors.New("oldserver: master login: empty user name")
	}
	form := s.MasterForm
	if form == "" {
		form = MasterAuto
	}
	sep := s.MasterSeparator
	if sep == "" {
		sep = "*"
	}
	var methods []MasterForm
	var plainOK bool
	if err := withContext(ctx, c, func() error {
		plainOK = c.Caps().Has(imap.Cap("AUTH=PLAIN"))
		return nil
	}); err != nil {
		return LoginInfo{}, err
	}
	switch form {
	case MasterPlain:
		methods = []MasterForm{MasterPlain}
	case MasterSeparator:
		methods = []MasterForm{MasterSeparator}
	default:
		if plainOK {
			methods = append(methods, MasterPlain)
		}
		methods = append(methods, MasterSeparator)
	}
	names, forms := loginNames(user, s)
	var errs []error
	start := time.Now()
	for i, name := range names {
		for j, m := range methods {
			var tried time.Duration // refusing the forms before this one
			if i > 0 || j > 0 {
				tried = time.Since(start)
			}
			err := withContext(ctx, c, func() error {
				if m == MasterPlain {
					return authError(c.Authenticate(sasl.NewPlainClient(name, s.MasterUser, masterPassword)), name+" (as "+s.MasterUser+")")
				}
				return login(c, name+sep+s.MasterUser, masterPassword)
			})
			if err == nil {
				return LoginInfo{Name: name, Form: forms[i], Master: m, Refused: tried}, nil
			}
			if !errors.Is(err, ErrAuthFailed) {
				return LoginInfo{}, err
			}
			errs = append(errs, err)
		}
	}
	return LoginInfo{}, errors.Join(errs...)
}

// authError classifies the result of LOGIN/AUTHENTICATE. name is the login
// name (never the password).
func authError(err error, name string) error {
	if err == nil {
		return nil
	}
	var ierr *imap.Error
	if !errors.As(err, &ierr) {
		return fmt.Errorf("oldserver: login as %q: %s", name, explainNet(err))
	}
	if ierr.Type == imap.StatusResponseTypeNo {
		switch ierr.Code {
		case "", imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed:
			return fmt.Errorf("%w: login as %q: the server said %q", ErrAuthFailed, name, ierr.Text)
		case imap.ResponseCodeUnavailable:
			return fmt.Errorf("oldserver: login as %q: the server's login service is temporarily unavailable: %w", name, ierr)
		case imap.ResponseCodePrivacyRequired:
			return fmt.Errorf("oldserver: login as %q: the server requires TLS for logins: %w", name, ierr)
		case imap.ResponseCodeExpired:
			return fmt.Errorf("oldserver: login as %q: the password has expired: %w", name, ierr)
		case imap.ResponseCodeContactAdmin:
			return fmt.Errorf("oldserver: login as %q: the server says to contact its admin: %w", name, ierr)
		case imap.ResponseCodeLimit, imap.ResponseCodeInUse:
			// RFC 5530: too many connections (of this user, from here).
			return fmt.Errorf("oldserver: login as %q: %w", name, &turnedAway{words: ierr.Text, cause: ierr, user: true})
		}
	}
	if ierr.Type == imap.StatusResponseTypeBye {
		return fmt.Errorf("oldserver: login as %q: %w", name, &turnedAway{words: ierr.Text, cause: ierr, user: true})
	}
	return fmt.Errorf("oldserver: login as %q refused: %w", name, ierr)
}

// withContext runs f and closes c if ctx ends first (imapclient commands take
// no context).
func withContext(ctx context.Context, c *imapclient.Client, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := f()
	if !stop() {
		return fmt.Errorf("oldserver: %w (connection closed)", ctx.Err())
	}
	return err
}

func hasAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// MessageFlags returns a message's flags and keywords as a server keeps
// them (case kept), without \Recent, which is session state.
func MessageFlags(flags []imap.Flag) []string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, string(f))
		}
	}
	return out
}
