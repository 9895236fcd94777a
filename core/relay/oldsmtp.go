package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// storeOldServer is the default Options.OldServer: the domain's settings as
// the store keeps them.
func (r *Relay) storeOldServer(ctx context.Context, domain string) (*oldserver.Settings, bool, error) {
	d, err := r.st.Domain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if d.OldServer == "" {
		return nil, d.Migrating, nil
	}
	var s oldserver.Settings
	if err := json.Unmarshal([]byte(d.OldServer), &s); err != nil {
		return nil, d.Migrating, fmt.Errorf("relay: old server settings of %s: %w", domain, err)
	}
	s = s.WithDefaults()
	return &s, d.Migrating, nil
}

// DialOldServer is the default Options.Dial: it connects to the old server's
// SMTP port with the TLS mode of its settings (RFC 3207 STARTTLS or RFC 8314
// implicit TLS; certificates checked against the pinned fingerprint or the
// system roots) and greets it with EHLO localName.
func DialOldServer(ctx context.Context, s *oldserver.Settings, localName string) (*smtp.Client, error) {
	set := s.WithDefaults()
	if set.Host.IsZero() {
		return nil, errors.New("relay: old server has no host")
	}
	addr := set.Host.DialAddr(set.SMTPPort)
	cfg := &tls.Config{ServerName: set.Host.ServerName(), MinVersion: tls.VersionTLS12}
	if set.PinnedSHA256 != "" {
		pin, err := oldserver.ParseFingerprint(set.PinnedSHA256)
		if err != nil {
			return nil, fmt.Errorf("relay: pinned certificate: %w", err)
		}
		// The pin replaces the chain and name checks; it is checked below.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("relay: old server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return fmt.Errorf("relay: old server certificate %s does not match the pinned fingerprint", oldserver.FormatFingerprint(sum[:]))
			}
			return nil
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: dial old SMTP %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var c *smtp.Client
	switch set.SMTPTLS {
	case oldserver.TLSImplicit:
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay: TLS with old SMTP %s: %w", addr, err)
		}
		c = smtp.NewClient(tc)
	case oldserver.TLSNone:
		c = smtp.NewClient(conn)
	default:
		// go-smtp greets with "localhost" before STARTTLS; the EHLO that
		// counts is the one after it.
		c, err = smtp.NewClientStartTLS(conn, cfg)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay: STARTTLS with old SMTP %s: %w", addr, err)
		}
	}
	if err := c.Hello(localName); err != nil {
		c.Close()
		return nil, fmt.Errorf("relay: old SMTP %s: %w", addr, err)
	}
	// Force the EHLO now, inside the dial deadline.
	if err := c.Noop(); err != nil {
		c.Close()
		return nil, fmt.Errorf("relay: old SMTP %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// sendGroup hands a message to a domain's old server for some recipients
// and reports each recipient's outcome (RFC 5321 section 3.3: per-RCPT
// replies, then one reply for DATA).
//
// The session is left open after the final reply, so that the caller can
// record the outcome before anything else happens; quit ends it (QUIT and
// close) and must be called.
func (r *Relay) sendGroup(ctx context.Context, domain, from string, rcpts []string, body []byte) (outs []outcome, quit func()) {
	quit = func() {}
	all := func(o func(rc string) outcome) ([]outcome, func()) {
		out := make([]outcome, 0, len(rcpts))
		for _, rc := range rcpts {
			out = append(out, o(rc))
		}
		return out, quit
	}
	old, _, err := r.opts.OldServer(ctx, domain)
	if err == nil && old == nil {
		err = fmt.Errorf("no old server is configured for %s", domain)
	}
	if err != nil {
		return all(func(rc string) outcome {
			return outcome{rcpt: rc, temp: true, status: "4.4.0", detail: oneLine(err.Error())}
		})
	}
	set := old.WithDefaults()
	remote := set.Host.String()
	dctx, cancel := context.WithTimeout(ctx, r.opts.ClientTimeout)
	c, err := r.opts.Dial(dctx, &set, r.opts.Hostname)
	cancel()
	if err != nil {
		return all(func(rc string) outcome { return failOutcome(rc, "", err) })
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	closeOnly := func() { stop(); c.Close() }
	quit = closeOnly
	c.CommandTimeout = r.opts.ClientTimeout
	c.SubmissionTimeout = 2 * r.opts.ClientTimeout

	utf8 := !isASCII(from)
	for _, rc := range rcpts {
		utf8 = utf8 || !isASCII(rc)
	}
	if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
		return all(func(rc string) outcome {
			return outcome{rcpt: rc, perm: true, status: "5.6.7", remote: remote,
				detail: "the old server does not support SMTPUTF8, needed for these addresses"}
		})
	}
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(body)), UTF8: utf8}); err != nil {
		return all(func(rc string) outcome { return failOutcome(rc, remote, err) })
	}
	var accepted []string
	for i, rc := range rcpts {
		err := c.Rcpt(rc, nil)
		if err == nil {
			accepted = append(accepted, rc)
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// The connection broke: nothing was delivered.
			for _, x := range append(accepted, rcpts[i:]...) {
				outs = append(outs, failOutcome(x, remote, err))
			}
			return outs, quit
		}
		outs = append(outs, failOutcome(rc, remote, err))
	}
	quit = func() { c.Quit(); closeOnly() }
	if len(accepted) == 0 {
		return outs, quit
	}
	failAccepted := func(err error) ([]outcome, func()) {
		for _, rc := range accepted {
			outs = append(outs, failOutcome(rc, remote, err))
		}
		return outs, quit
	}
	w, err := c.Data()
	if err != nil {
		return failAccepted(err)
	}
	if _, err := w.Write(body); err != nil {
		quit = closeOnly
		return failAccepted(err)
	}
	if err := w.Close(); err != nil {
		return failAccepted(err)
	}
	for _, rc := range accepted {
		outs = append(outs, okOutcome(rc, remote))
	}
	return outs, quit
}
