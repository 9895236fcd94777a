package oldserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

func (o *DialOptions) localName() string {
	if o != nil && o.LocalName != "" {
		return o.LocalName
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
		if _, err := ParseHost(h); err == nil {
			return h
		}
	}
	return "localhost"
}

// DialSMTP connects to the old server's SMTP port as s says (TLS mode,
// certificate check), reads the greeting and says EHLO (RFC 5321 §4.1.1.1;
// after STARTTLS, RFC 3207, again over TLS). Setup is bounded by ctx and
// opts.Timeout; afterwards the client's own CommandTimeout applies. Failures
// are *DialError.
func DialSMTP(ctx context.Context, s Settings, opts *DialOptions) (*smtp.Client, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return nil, err
	}
	return dialSMTP(ctx, s, opts, v)
}

func dialSMTP(ctx context.Context, s Settings, opts *DialOptions, v *verifier) (*smtp.Client, error) {
	addr := s.Host.DialAddr(s.SMTPPort)
	timeout := opts.timeout()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(op string, err error) (*smtp.Client, error) {
		return nil, dialError(sctx, "SMTP", addr, op, err)
	}

	var d net.Dialer
	raw, err := d.DialContext(sctx, "tcp", addr)
	if err != nil {
		return fail("connect", err)
	}
	conn := &bannerConn{Conn: raw}
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	defer stop()

	var c *smtp.Client
	switch s.SMTPTLS {
	case TLSImplicit:
		tconn := tls.Client(conn, v.config())
		if err := tconn.HandshakeContext(sctx); err != nil {
			conn.Close()
			return fail("tls", handshakeError("SMTP", err))
		}
		c = smtp.NewClient(tconn)
	case TLSStartTLS:
		// Greets, says EHLO (as "localhost"), sends STARTTLS and wraps the
		// connection; the handshake runs with the EHLO below.
		c, err = smtp.NewClientStartTLS(conn, v.config())
		if err != nil {
			conn.Close()
			if strings.Contains(err.Error(), "doesn't support STARTTLS") { // go-smtp's words
				err = fmt.Errorf("%w; use TLS mode %q or %q", ErrNoStartTLS, TLSImplicit, TLSNone)
			} else {
				err = greetingError("SMTP", conn.banner(), err, sctx.Err() != nil)
			}
			return fail("starttls", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = timeout
	if err := c.Hello(opts.localName()); err != nil {
		c.Close()
		op := "greeting"
		var ce *CertError
		if errors.As(err, &ce) {
			op = "starttls"
		} else if s.SMTPTLS == TLSNone {
			err = greetingError("SMTP", conn.banner(), err, sctx.Err() != nil)
		}
		return fail(op, err)
	}
	c.CommandTimeout = 5 * time.Minute // RFC 5321 §4.5.3.2
	if !stop() && sctx.Err() != nil {
		c.Close()
		return fail("greeting", sctx.Err())
	}
	return c, nil
}
