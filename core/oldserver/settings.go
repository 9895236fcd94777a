package oldserver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"mailferry/core/auth/addr"
)

// TLSMode is how a connection to the old server is encrypted.
type TLSMode string

// TLS modes.
const (
	// TLSNone: plaintext. Passwords cross the network in the clear; only
	// sensible on a trusted network.
	TLSNone TLSMode = "none"
	// TLSStartTLS: connect in plaintext, then upgrade with STARTTLS
	// (RFC 9051 §6.2.1 for IMAP, RFC 3207 for SMTP); the upgrade is required.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit: TLS from the first byte (RFC 8314), e.g. IMAPS port 993,
	// SMTPS port 465.
	TLSImplicit TLSMode = "tls"
)

func (m TLSMode) valid() bool {
	return m == TLSNone || m == TLSStartTLS || m == TLSImplicit
}

// LoginForm is the form of the user name sent to the old server.
type LoginForm string

// Login forms.
const (
	// LoginFull sends the full address, "alice@example.org".
	LoginFull LoginForm = "full"
	// LoginLocal sends the local part, "alice".
	LoginLocal LoginForm = "local"
	// LoginAuto tries the full address, then — only for an address of
	// Settings.DefaultDomain — the local part.
	LoginAuto LoginForm = "auto"
)

func (f LoginForm) valid() bool { return f == LoginFull || f == LoginLocal || f == LoginAuto }

// MasterForm is how a master-user login names the target user.
type MasterForm string

// Master-user login forms.
const (
	// MasterPlain: AUTHENTICATE PLAIN (RFC 4616) with authzid = target user,
	// authcid = master user (Dovecot, Cyrus, Courier with authzid support).
	MasterPlain MasterForm = "plain"
	// MasterSeparator: LOGIN "user*master" (Dovecot's
	// auth_master_user_separator; the separator is Settings.MasterSeparator).
	MasterSeparator MasterForm = "separator"
	// MasterAuto tries MasterPlain (if the server offers AUTH=PLAIN), then
	// MasterSeparator.
	MasterAuto MasterForm = "auto"
)

func (f MasterForm) valid() bool {
	return f == MasterPlain || f == MasterSeparator || f == MasterAuto
}

// Settings say where an old server is and how to talk to it. The store keeps
// them as JSON per domain. Settings never hold a password.
type Settings struct {
	// Host is the server's DNS name or address literal.
	Host Host `json:"host"`
	// IMAPPort is the IMAP port (1–65535): usually 143 with TLSStartTLS or
	// TLSNone, 993 with TLSImplicit.
	IMAPPort int `json:"imap_port"`
	// IMAPTLS is the IMAP TLS mode.
	IMAPTLS TLSMode `json:"imap_tls"`
	// SMTPPort is the SMTP port the new server relays to (1–65535): usually
	// 25 with TLSStartTLS or TLSNone, 465 with TLSImplicit.
	SMTPPort int `json:"smtp_port"`
	// SMTPTLS is the SMTP TLS mode.
	SMTPTLS TLSMode `json:"smtp_tls"`
	// POP3Port, if set (1–65535), is the old server's POP3 port: the
	// migration then reads the UIDLs of each account's INBOX there, so that
	// Mailferry's POP3 serves the same ones. 0: no POP3 is read. Usually
	// 110 with TLSStartTLS (STLS) or TLSNone, 995 with TLSImplicit.
	POP3Port int `json:"pop3_port,omitempty"`
	// POP3TLS is the POP3 TLS mode; empty means TLSStartTLS.
	POP3TLS TLSMode `json:"pop3_tls,omitempty"`
	// PinnedSHA256, if set, is the SHA-256 fingerprint of the server's leaf
	// certificate (DER), as 64 hex digits; colons and spaces between byte
	// pairs are allowed ("AB:CD:..."). Then that exact certificate is trusted
	// (self-signed, expired or issued for another name alike) and nothing
	// else; if empty, the certificate must chain to a system root and match
	// Host. It applies to IMAP and SMTP.
	PinnedSHA256 string `json:"pinned_sha256,omitempty"`
	// LoginForm is the form of user names sent to the old server.
	LoginForm LoginForm `json:"login_form"`
	// DefaultDomain is the domain the old server gives a bare user name
	// ("alice" is alice@DefaultDomain: Dovecot's auth_default_realm, a
	// single-domain server). LoginAuto tries the bare local part only for
	// addresses of this domain: on a server whose bare names mean another
	// domain, alice@other.example logging in as "alice" would get
	// alice@DefaultDomain's mailbox. Empty: LoginAuto sends full addresses
	// only. LoginLocal is the admin's word that bare names are this
	// domain's; it sends the local part whatever DefaultDomain says.
	DefaultDomain string `json:"default_domain,omitempty"`
	// IgnoresDomain says the old server ignores the domain of user names
	// (ProbeResult's IMAP.IgnoresDomain): "alice@any.example" is alice.
	// Then only addresses of DefaultDomain, which must be set, may log in
	// for the first time; another domain's "alice" would get the same
	// mailbox.
	IgnoresDomain bool `json:"ignores_domain,omitempty"`
	// MasterUser, if set, is the name of a master (admin) user that can log
	// in as any user (see LoginMaster). Its password is never stored here.
	MasterUser string `json:"master_user,omitempty"`
	// MasterForm is how LoginMaster names the target user; empty means
	// MasterAuto.
	MasterForm MasterForm `json:"master_form,omitempty"`
	// MasterSeparator is the separator of the MasterSeparator form; empty
	// means "*" (Dovecot's usual auth_master_user_separator).
	MasterSeparator string `json:"master_separator,omitempty"`
	// MaxConnections caps the IMAP connections Mailferry opens to this
	// server at once, shared by every account's copy; 0 means
	// DefaultMaxConnections. A connection the server turns away
	// (ErrTurnedAway) lowers it for the engine's life and is learnt.
	MaxConnections int `json:"max_connections,omitempty"`

	// Learnt is what Mailferry learnt about the server (kept apart from
	// these settings, never stored with them); Login tries the login form
	// it names first. Nil means nothing learnt; facts of another server
	// are ignored (Learnt.For).
	Learnt *Learnt `json:"-"`
}

// DefaultMaxConnections is Settings.MaxConnections when it is 0: enough for
// a small server (Dovecot's mail_max_userip_connections is 10, Courier's
// MAXPERIP 4 per address — lower it for those).
const DefaultMaxConnections = 10

// ConnLimit is s.MaxConnections, or DefaultMaxConnections when it is 0.
func (s Settings) ConnLimit() int {
	if s.MaxConnections > 0 {
		return s.MaxConnections
	}
	return DefaultMaxConnections
}

// Default ports.
const (
	DefaultIMAPPort  = 143
	DefaultIMAPSPort = 993
	DefaultSMTPPort  = 25
	DefaultSMTPSPort = 465
)

// DefaultSettings returns settings for host with IMAP on 143 with STARTTLS,
// SMTP on 25 with STARTTLS, system-root certificate checks and LoginAuto.
func DefaultSettings(host Host) Settings {
	return Settings{
		Host:      host,
		IMAPPort:  DefaultIMAPPort,
		IMAPTLS:   TLSStartTLS,
		SMTPPort:  DefaultSMTPPort,
		SMTPTLS:   TLSStartTLS,
		LoginForm: LoginAuto,
	}
}

// WithDefaults returns s with empty fields filled in: TLS modes
// TLSStartTLS, ports to match the TLS mode (143/993, 25/465), LoginAuto.
// It does not fill Host.
func (s Settings) WithDefaults() Settings {
	if s.IMAPTLS == "" {
		s.IMAPTLS = TLSStartTLS
	}
	if s.IMAPPort == 0 {
		s.IMAPPort = DefaultIMAPPort
		if s.IMAPTLS == TLSImplicit {
			s.IMAPPort = DefaultIMAPSPort
		}
	}
	if s.SMTPTLS == "" {
		s.SMTPTLS = TLSStartTLS
	}
	if s.SMTPPort == 0 {
		s.SMTPPort = DefaultSMTPPort
		if s.SMTPTLS == TLSImplicit {
			s.SMTPPort = DefaultSMTPSPort
		}
	}
	if s.LoginForm == "" {
		s.LoginForm = LoginAuto
	}
	return s
}

// SettingsError is one problem found by Settings.Validate. Field is the JSON
// name of the field, so a form can mark it.
type SettingsError struct {
	Field   string
	Problem string
}

// Error implements error.
func (e *SettingsError) Error() string {
	return fmt.Sprintf("oldserver: %s: %s", e.Field, e.Problem)
}

// Validate reports every problem of s, each as a *SettingsError, joined with
// errors.Join; nil if s can be used. It does no network I/O.
func (s Settings) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &SettingsError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if s.Host.IsZero() {
		add("host", "%v", errZeroHost)
	}
	checkPort := func(field string, p int) {
		if p < 1 || p > 65535 {
			add(field, "port %d is out of range: a port is 1 to 65535", p)
		}
	}
	checkPort("imap_port", s.IMAPPort)
	checkPort("smtp_port", s.SMTPPort)
	if s.POP3Port != 0 {
		checkPort("pop3_port", s.POP3Port)
	}
	checkMode := func(field string, m TLSMode) {
		if !m.valid() {
			add(field, "TLS mode %q is unknown: use %q, %q or %q", m, TLSNone, TLSStartTLS, TLSImplicit)
		}
	}
	checkMode("imap_tls", s.IMAPTLS)
	checkMode("smtp_tls", s.SMTPTLS)
	if s.POP3TLS != "" {
		checkMode("pop3_tls", s.POP3TLS)
	}
	if s.PinnedSHA256 != "" {
		if _, err := ParseFingerprint(s.PinnedSHA256); err != nil {
			add("pinned_sha256", "%v", err)
		}
	}
	if s.DefaultDomain != "" {
		if _, err := addr.Domain(s.DefaultDomain); err != nil {
			add("default_domain", "%q is not a domain name", s.DefaultDomain)
		}
	}
	if s.IgnoresDomain && s.DefaultDomain == "" {
		add("default_domain", "a server that ignores the domain of user names needs the one domain its users belong to")
	}
	if s.MaxConnections < 0 || s.MaxConnections > 1000 {
		add("max_connections", "%d connections at once is out of range: give 1 to 1000, or 0 for the default (%d)", s.MaxConnections, DefaultMaxConnections)
	}
	if !s.LoginForm.valid() {
		add("login_form", "login form %q is unknown: use %q, %q or %q", s.LoginForm, LoginFull, LoginLocal, LoginAuto)
	}
	if s.MasterForm != "" && !s.MasterForm.valid() {
		add("master_form", "master login form %q is unknown: use %q, %q or %q", s.MasterForm, MasterPlain, MasterSeparator, MasterAuto)
	}
	if strings.ContainsAny(s.MasterUser, "\x00\r\n") {
		add("master_user", "the master user name contains a control character")
	}
	if strings.ContainsAny(s.MasterSeparator, "\x00\r\n\" ") || len(s.MasterSeparator) > 4 {
		add("master_separator", "the separator must be at most 4 characters, no spaces, quotes or control characters")
	}
	return errors.Join(errs...)
}

// ParseFingerprint parses a SHA-256 certificate fingerprint: 64 hex digits,
// upper or lower case, optionally with ':' or ' ' between byte pairs, and an
// optional "sha256:" / "SHA256 Fingerprint=" prefix as printed by common
// tools (openssl x509 -fingerprint -sha256).
func ParseFingerprint(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	low := strings.ToLower(t)
	for _, p := range []string{"sha256 fingerprint=", "sha256:", "sha-256:"} {
		if strings.HasPrefix(low, p) {
			t = strings.TrimSpace(t[len(p):])
			break
		}
	}
	t = strings.NewReplacer(":", "", " ", "").Replace(t)
	if len(t) != 64 {
		return nil, fmt.Errorf("a SHA-256 fingerprint has 64 hex digits, this one has %d", len(t))
	}
	b, err := hex.DecodeString(t)
	if err != nil {
		return nil, errors.New("a SHA-256 fingerprint has only hex digits 0-9 a-f (and ':' between pairs)")
	}
	return b, nil
}

// FormatFingerprint formats a SHA-256 digest as lowercase hex pairs separated
// by colons, the form shown to admins.
func FormatFingerprint(sum []byte) string {
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}
