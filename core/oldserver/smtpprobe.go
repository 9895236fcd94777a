package oldserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// The SMTP part of the probe: what the old server's submission port offers,
// and whether it takes mail for a local address without a login.

// SMTPReport is the SMTP part of a ProbeResult.
type SMTPReport struct {
	// Addr is the host:port probed.
	Addr string `json:"addr"`
	// Reached reports whether the greeting and EHLO worked (over TLS if so
	// configured).
	Reached bool `json:"reached"`
	// Error is the failure, in plain words; empty if none.
	Error string `json:"error,omitempty"`
	// Err is the failure itself (for Explain and errors.As); nil if none.
	Err error `json:"-"`
	// TLS describes the TLS session; nil without TLS.
	TLS *TLSInfo `json:"tls,omitempty"`
	// Extensions are the EHLO keywords, sorted.
	Extensions []string `json:"extensions,omitempty"`
	// StartTLS, EightBitMIME, SMTPUTF8 report the EHLO extensions of RFC
	// 3207, RFC 6152 and RFC 6531 (as seen after STARTTLS if used).
	StartTLS     bool `json:"starttls"`
	EightBitMIME bool `json:"8bitmime"`
	SMTPUTF8     bool `json:"smtputf8"`
	// Size is the SIZE limit (RFC 1870) in bytes; 0 if none announced.
	Size    int64 `json:"size"`
	HasSize bool  `json:"has_size"`
	// Auth lists the SASL mechanisms offered.
	Auth []string `json:"auth,omitempty"`
	// Recipient is the local address used for the MAIL FROM / RCPT TO test;
	// empty if none was tested (no user address given).
	Recipient string `json:"recipient,omitempty"`
	// RecipientAccepted reports whether MAIL FROM and RCPT TO were accepted
	// without authentication (then RSET: nothing is sent).
	RecipientAccepted bool `json:"recipient_accepted"`
	// Reply is the server's reply to the refused command, if any.
	Reply string `json:"reply,omitempty"`
	// Summary is one line in plain words.
	Summary string `json:"summary"`
	// Notes are further findings in plain words.
	Notes []string `json:"notes,omitempty"`
}

func probeSMTP(ctx context.Context, s Settings, user string, opts *DialOptions, r *SMTPReport) error {
	r.Addr = s.Host.DialAddr(s.SMTPPort)
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return err
	}
	c, err := dialSMTP(ctx, s, opts, v)
	r.TLS = v.seen()
	r.Notes = append(r.Notes, tlsNotes(r.TLS, s.PinnedSHA256 != "")...)
	if err != nil {
		r.Error = err.Error()
		r.Err = err
		r.Summary = "cannot use SMTP at " + r.Addr + ": " + explainNet(errors.Unwrap(err))
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r.Reached = true
	for _, kw := range []string{"STARTTLS", "8BITMIME", "SMTPUTF8", "SIZE", "AUTH", "PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES", "REQUIRETLS", "XCLIENT", "XFORWARD", "BINARYMIME"} {
		if ok, _ := c.Extension(kw); ok {
			r.Extensions = append(r.Extensions, kw)
		}
	}
	r.StartTLS, _ = c.Extension("STARTTLS")
	r.StartTLS = r.StartTLS || s.SMTPTLS == TLSStartTLS // not re-announced after the upgrade
	r.EightBitMIME, _ = c.Extension("8BITMIME")
	r.SMTPUTF8, _ = c.Extension("SMTPUTF8")
	if ok, p := c.Extension("SIZE"); ok {
		r.HasSize = true
		r.Size, _ = strconv.ParseInt(strings.TrimSpace(p), 10, 64)
	}
	if ok, p := c.Extension("AUTH"); ok {
		r.Auth = strings.Fields(p)
	}
	if s.SMTPTLS == TLSNone {
		if r.StartTLS {
			r.Notes = append(r.Notes, "the server offers STARTTLS: choose TLS mode starttls")
		} else {
			r.Notes = append(r.Notes, "the server does not offer STARTTLS: mail to it crosses the network unencrypted")
		}
	}
	if !r.EightBitMIME {
		r.Notes = append(r.Notes, "no 8BITMIME: messages with 8-bit bodies must be converted before relaying")
	}
	if !r.SMTPUTF8 {
		r.Notes = append(r.Notes, "no SMTPUTF8: addresses with non-ASCII characters cannot be relayed")
	}
	if r.HasSize && r.Size > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("largest message accepted: %.1f MB", float64(r.Size)/1e6))
	}

	if !strings.Contains(user, "@") {
		r.Summary = fmt.Sprintf("reached %s (EHLO ok); no user address given, so delivery was not tested", r.Addr)
		_ = c.Quit()
		return nil
	}
	r.Recipient = user
	err = c.Mail(user, nil)
	if err == nil {
		err = c.Rcpt(user, nil)
	}
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			r.Reply = fmt.Sprintf("%d %s", se.Code, se.Message)
			r.Summary = fmt.Sprintf("reached %s, but it refuses mail for %s without authentication: %s", r.Addr, user, r.Reply)
			_ = c.Reset()
			_ = c.Quit()
			r.Err = fmt.Errorf("oldserver: SMTP %s: mail for %s refused: %w", r.Addr, user, err)
			return r.Err
		}
		r.Error = err.Error()
		r.Err = err
		r.Summary = fmt.Sprintf("reached %s, then the connection failed: %s", r.Addr, explainNet(err))
		r.Err = &DialError{Proto: "SMTP", Addr: r.Addr, Op: "rcpt", Err: err}
		return r.Err
	}
	r.RecipientAccepted = true
	r.Summary = fmt.Sprintf("reached %s; it accepts mail for %s without authentication (nothing was sent)", r.Addr, user)
	_ = c.Reset()
	_ = c.Quit()
	return nil
}
