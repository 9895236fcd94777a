package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Outbound SMTP sessions to servers other than an old server: a recipient
// domain's mail exchangers (direct delivery) and a smarthost.

// tlsNeed is what a session requires of TLS.
type tlsNeed int

const (
	// tlsOpportunistic: STARTTLS when offered, the certificate not
	// required to verify (RFC 7435; RFC 3207 section 4.1 lets a client
	// that finds TLS unusable go on without); the verification result is
	// still recorded for MTA-STS testing mode.
	tlsOpportunistic tlsNeed = iota
	// tlsVerified: STARTTLS required, the certificate must verify for the
	// server's name (MTA-STS enforce, a starttls smarthost).
	tlsVerified
	// tlsImplicit: TLS from the first byte (RFC 8314), verified.
	tlsImplicit
	// tlsNone: plain SMTP, STARTTLS not used.
	tlsNone
)

func (n tlsNeed) String() string {
	switch n {
	case tlsVerified:
		return "starttls-verified"
	case tlsImplicit:
		return "tls"
	case tlsNone:
		return "none"
	}
	return "opportunistic"
}

// errNoStartTLS: TLS is required and the server does not offer STARTTLS.
var errNoStartTLS = errors.New("relay: the server does not offer STARTTLS")

// errTLSPlainFallback marks a failed opportunistic TLS handshake: the host
// is tried again without STARTTLS.
var errTLSPlainFallback = errors.New("relay: opportunistic TLS failed")

// tlsInfo says how a session is protected.
type tlsInfo struct {
	on        bool
	verifyErr error // the certificate's verification error (nil: verified) when on
}

// greetedConn hands a fresh go-smtp client a 220 greeting before the
// connection's own bytes: we read the real greeting (and said EHLO and
// perhaps STARTTLS) ourselves, and the client then says EHLO again, which
// RFC 5321 section 4.1.4 allows.
type greetedConn struct {
	net.Conn
	pre []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pre) > 0 {
		n := copy(p, g.pre)
		g.pre = g.pre[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// verifiedTLS is the TLS configuration that verifies a server's
// certificate for name against Options.RootCAs (nil: the system roots).
func (r *Relay) verifiedTLS(name string) *tls.Config {
	return &tls.Config{ServerName: name, RootCAs: r.opts.RootCAs, MinVersion: tls.VersionTLS12}
}

// errPinMismatch: the server's certificate is not the one pinned.
var errPinMismatch = errors.New("relay: the certificate is not the pinned one")

// serverTLS is verifiedTLS, or with pin (a SHA-256 digest) the
// configuration that accepts only the certificate whose digest it is,
// whoever issued it.
func (r *Relay) serverTLS(name string, pin []byte) *tls.Config {
	cfg := r.verifiedTLS(name)
	if pin == nil {
		return cfg
	}
	cfg.InsecureSkipVerify = true // replaced by the pin check below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errPinMismatch
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
			return fmt.Errorf("%w: its SHA-256 is %x", errPinMismatch, sum)
		}
		return nil
	}
	return cfg
}

// dialSMTP opens a session to addr (host:port, an IP address or a name the
// resolver knows) for a server named name (TLS server name), greets it
// with EHLO and protects it as need says. The session's commands are
// bounded by Options.ClientTimeout; connecting by ctx.
func (r *Relay) dialSMTP(ctx context.Context, addr, name string, need tlsNeed, pin []byte) (*smtp.Client, tlsInfo, error) {
	var info tlsInfo
	ctx, cancel := context.WithTimeout(ctx, r.opts.ClientTimeout)
	defer cancel()
	d := net.Dialer{Resolver: r.resolver}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, info, fmt.Errorf("connect to %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(r.opts.ClientTimeout))
	fail := func(op string, err error) (*smtp.Client, tlsInfo, error) {
		conn.Close()
		return nil, info, fmt.Errorf("%s %s: %w", op, addr, err)
	}
	var c *smtp.Client
	switch need {
	case tlsImplicit:
		tc := tls.Client(conn, r.serverTLS(name, pin))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("TLS with", err)
		}
		info.on = true
		c = smtp.NewClient(tc)
	case tlsNone:
		c = smtp.NewClient(conn)
	default:
		// Greeting, EHLO and STARTTLS by hand: go-smtp's client does not
		// offer STARTTLS after an EHLO of our choice.
		tp := textproto.NewConn(conn)
		if _, _, err := tp.ReadResponse(220); err != nil {
			return fail("greeting of", protoErr(err))
		}
		if err := tp.PrintfLine("EHLO %s", r.opts.Hostname); err != nil {
			return fail("EHLO to", err)
		}
		_, msg, err := tp.ReadResponse(250)
		if err != nil {
			return fail("EHLO to", protoErr(err))
		}
		starttls := false
		for _, l := range strings.Split(msg, "\n")[1:] {
			if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
				starttls = true
			}
		}
		if !starttls {
			if need == tlsVerified {
				return fail("STARTTLS with", errNoStartTLS)
			}
			c = smtp.NewClient(&greetedConn{Conn: conn, pre: []byte("220 " + name + "\r\n")})
			break
		}
		if err := tp.PrintfLine("STARTTLS"); err != nil {
			return fail("STARTTLS with", err)
		}
		if _, _, err := tp.ReadResponse(220); err != nil {
			return fail("STARTTLS with", protoErr(err))
		}
		if tp.R.Buffered() > 0 {
			return fail("STARTTLS with", errors.New("data after the STARTTLS reply")) // RFC 3207 section 4.1 (command injection)
		}
		cfg := r.serverTLS(name, pin)
		if need == tlsOpportunistic {
			// Any certificate will do; whether it verifies is recorded.
			cfg.InsecureSkipVerify = true
			cfg.MinVersion = tls.VersionTLS10
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				info.verifyErr = verifyChain(cs, name, r.opts.RootCAs)
				return nil
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			if need == tlsOpportunistic {
				return fail("TLS with", fmt.Errorf("%w: %w", errTLSPlainFallback, err))
			}
			return fail("TLS with", err)
		}
		info.on = true
		c = smtp.NewClient(&greetedConn{Conn: tc, pre: []byte("220 " + name + "\r\n")})
	}
	c.CommandTimeout = r.opts.ClientTimeout
	if err := c.Hello(r.opts.Hostname); err != nil {
		c.Close()
		return nil, info, fmt.Errorf("EHLO to %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	if !stop() {
		c.Close()
		return nil, info, fmt.Errorf("connect to %s: %w", addr, ctx.Err())
	}
	return c, info, nil
}

// protoErr turns a textproto reply error into the *smtp.SMTPError go-smtp
// gives for the same reply.
func protoErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		se := &smtp.SMTPError{Code: te.Code, Message: te.Msg, EnhancedCode: smtp.NoEnhancedCode}
		return se
	}
	return err
}

// verifyChain checks a server's certificate chain for name against roots
// (nil: the system roots).
func verifyChain(cs tls.ConnectionState, name string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}

// authPlain logs in to a smarthost with AUTH PLAIN (RFC 4954, RFC 4616),
// which only a session under TLS may send.
func authPlain(c *smtp.Client, info tlsInfo, user string, pass Secret) error {
	if !info.on {
		return errors.New("relay: AUTH refused without TLS")
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		return errors.New("relay: the smarthost does not offer AUTH")
	}
	return c.Auth(sasl.NewPlainClient("", user, string(pass)))
}
