package oldserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ProbeResult is what Probe found out about an old server. Each part has a
// one-line Summary and Notes in plain words an admin can read; Text joins
// them.
type ProbeResult struct {
	IMAP IMAPReport `json:"imap"`
	SMTP SMTPReport `json:"smtp"`
	POP3 POP3Report `json:"pop3"`
}

// IMAPReport is the IMAP part of a ProbeResult.
type IMAPReport struct {
	// Addr is the host:port probed.
	Addr string `json:"addr"`
	// Reached reports whether a session was set up (connect, TLS, greeting).
	Reached bool `json:"reached"`
	// Error is the failure, in plain words; empty if none.
	Error string `json:"error,omitempty"`
	// Err is the failure itself (for Explain and errors.As); nil if none.
	Err error `json:"-"`
	// TLS describes the TLS session; nil without TLS (or when the server
	// never got as far as a certificate).
	TLS *TLSInfo `json:"tls,omitempty"`
	// Capabilities the server announced (after login when logged in),
	// sorted.
	Capabilities []string `json:"capabilities,omitempty"`
	// LoggedIn reports whether the given credentials were accepted; Login
	// says in which form.
	LoggedIn bool       `json:"logged_in"`
	Login    *LoginInfo `json:"login,omitempty"`
	// IgnoresDomain reports that the server also accepted the password
	// for the user's local part at a domain that does not exist (it
	// ignores the domain of user names: Dovecot auth_username_format=%n,
	// PAM, system users). Then any domain's first logins would reach the
	// same mailboxes: see Settings.IgnoresDomain.
	IgnoresDomain bool `json:"ignores_domain,omitempty"`
	// Namespaces from NAMESPACE (RFC 2342), if offered and logged in.
	Namespaces []Namespace `json:"namespaces,omitempty"`
	// Separator is the hierarchy separator of the personal namespace
	// ("" if unknown or flat).
	Separator string `json:"separator,omitempty"`
	// SpecialUse maps a special-use attribute (RFC 6154, e.g. `\Sent`) to
	// the mailbox that has it.
	SpecialUse map[string]string `json:"special_use,omitempty"`
	// SpecialUseGuessed maps attributes no mailbox has to a mailbox whose
	// name suggests it ("Sent Items" for `\Sent`).
	SpecialUseGuessed map[string]string `json:"special_use_guessed,omitempty"`
	// Mailboxes is the number of mailboxes listed.
	Mailboxes int `json:"mailboxes"`
	// Learnt is what the probe learnt that later logins and copies use
	// (the login form that worked, a connection cap, capabilities); nil
	// if the server was not reached. Facts explains it.
	Learnt *Learnt `json:"learnt,omitempty"`
	// Summary is one line in plain words.
	Summary string `json:"summary"`
	// Notes are further findings in plain words.
	Notes []string `json:"notes,omitempty"`
}

// Facts is what the probe learnt, in words an admin understands, each with
// the workaround Mailferry applies, as it holds under s (the settings the
// domain will have) for the domain's users (Learnt.Facts).
func (r *ProbeResult) Facts(s Settings, domain string) []Fact {
	if r == nil {
		return nil
	}
	return r.IMAP.Learnt.Facts(s, domain)
}

// Namespace is one NAMESPACE entry.
type Namespace struct {
	// Kind is "personal", "other users" or "shared".
	Kind string `json:"kind"`
	// Prefix is the namespace prefix, e.g. "" or "INBOX.".
	Prefix string `json:"prefix"`
	// Separator is the hierarchy separator ("" if flat).
	Separator string `json:"separator"`
}

// Text returns the whole report in plain words, one finding per line.
func (r *ProbeResult) Text() string {
	var b strings.Builder
	b.WriteString("IMAP: " + r.IMAP.Summary + "\n")
	for _, n := range r.IMAP.Notes {
		b.WriteString("  - " + n + "\n")
	}
	b.WriteString("SMTP: " + r.SMTP.Summary + "\n")
	for _, n := range r.SMTP.Notes {
		b.WriteString("  - " + n + "\n")
	}
	if r.POP3.Summary != "" {
		b.WriteString("POP3: " + r.POP3.Summary + "\n")
	}
	return b.String()
}

// Probe connects to the old server as s says and reports what it offers:
// see ProbeWith.
func Probe(ctx context.Context, s Settings, user, password string) (*ProbeResult, error) {
	return ProbeWith(ctx, s, user, password, nil)
}

// ProbeWith connects to the old server's IMAP port, reports capabilities and
// the TLS session (certificate subject, issuer, fingerprint, whether it
// verified); with user (an address) and password it logs in as Login does
// and reports NAMESPACE, the hierarchy separator and special-use mailboxes.
// It then connects to the SMTP port, says EHLO, reports STARTTLS, SIZE,
// 8BITMIME and SMTPUTF8, and if user is an address, tests whether MAIL FROM
// and RCPT TO that address are accepted without authentication (then RSET;
// nothing is sent). Last it looks for POP3 (Settings.POP3Port, or else
// ports 995 and 110, briefly) and, logged in, counts its UIDLs.
//
// The result is nil only for invalid settings (a *SettingsError). Otherwise
// it is complete as far as the server let the probe go, and the error joins
// the IMAP and SMTP failures (it matches ErrAuthFailed for a wrong password,
// *DialError / *CertError for the rest).
func ProbeWith(ctx context.Context, s Settings, user, password string, opts *DialOptions) (*ProbeResult, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &ProbeResult{}
	imapErr := probeIMAP(ctx, s, user, password, opts, &r.IMAP)
	smtpErr := probeSMTP(ctx, s, user, opts, &r.SMTP)
	loginName := ""
	if r.IMAP.Login != nil {
		loginName = r.IMAP.Login.Name
	}
	var pop3Err error
	if r.IMAP.Reached || s.POP3Port != 0 {
		// Guessing POP3 ports of a server that did not answer IMAP would
		// only make the probe wait longer.
		pop3Err = probePOP3(ctx, s, user, loginName, password, opts, &r.POP3)
	}
	return r, errors.Join(imapErr, smtpErr, pop3Err)
}

func tlsNotes(info *TLSInfo, pinned bool) []string {
	if info == nil {
		return nil
	}
	var n []string
	n = append(n, fmt.Sprintf("%s, certificate for %s issued by %s, valid until %s, SHA-256 fingerprint %s",
		info.Version, info.Subject, info.Issuer, info.NotAfter.Format(time.DateOnly), info.SHA256))
	switch {
	case info.Verified:
		n = append(n, "the certificate is trusted by this machine and matches the host name")
	case pinned && info.Pinned:
		n = append(n, "the certificate is not trusted by this machine ("+info.VerifyProblem+"), but it is the pinned one, so it is accepted")
	default:
		n = append(n, "the certificate is NOT trusted: "+info.VerifyProblem)
	}
	if pinned && !info.Pinned {
		n = append(n, "the certificate does NOT match the pinned fingerprint")
	}
	if d := time.Until(info.NotAfter); d > 0 && d < 30*24*time.Hour {
		n = append(n, fmt.Sprintf("the certificate expires in %d days", int(d.Hours()/24)))
	}
	return n
}

func probeIMAP(ctx context.Context, s Settings, user, password string, opts *DialOptions, r *IMAPReport) error {
	r.Addr = s.Host.DialAddr(s.IMAPPort)
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return err
	}
	c, err := dialIMAP(ctx, s, opts, v)
	r.TLS = v.seen()
	r.Notes = append(r.Notes, tlsNotes(r.TLS, s.PinnedSHA256 != "")...)
	if err != nil {
		r.Error = err.Error()
		r.Err = err
		r.Summary = "cannot use IMAP at " + r.Addr + ": " + explainNet(errors.Unwrap(err))
		return err
	}
	defer c.Close()
	r.Reached = true
	r.Learnt = &Learnt{Server: LearntKey(s), Updated: time.Now()}
	countConns(ctx, s, opts, r.Learnt)
	switch s.IMAPTLS {
	case TLSNone:
		r.Notes = append(r.Notes, "the connection is not encrypted: passwords cross the network in the clear")
		if c.Caps().Has(imap.CapStartTLS) {
			r.Notes = append(r.Notes, "the server offers STARTTLS: choose TLS mode starttls")
		}
	}
	if c.Caps().Has(imap.CapLoginDisabled) && !c.Caps().Has(imap.Cap("AUTH=PLAIN")) {
		r.Notes = append(r.Notes, "the server does not allow logins on this connection (LOGINDISABLED)")
	}

	if user == "" || password == "" {
		r.Capabilities = capList(c.Caps())
		r.Summary = fmt.Sprintf("reached %s; no credentials given, so mailboxes were not checked", r.Addr)
		return nil
	}
	if at := strings.LastIndexByte(user, '@'); s.LoginForm == LoginAuto && s.DefaultDomain == "" && at > 0 {
		// The admin's own test account: find out whether the server takes
		// bare names too (the result says which form worked; migration
		// tries bare names only with Settings.DefaultDomain).
		s.DefaultDomain = user[at+1:]
	}
	info, err := Login(ctx, c, s, user, password)
	if err != nil {
		r.Capabilities = capList(c.Caps())
		r.Error = err.Error()
		r.Err = err
		if errors.Is(err, ErrAuthFailed) {
			r.Summary = fmt.Sprintf("reached %s, but the server refused the user name or password for %s", r.Addr, user)
		} else {
			r.Summary = fmt.Sprintf("reached %s, but the login of %s failed: %v", r.Addr, user, err)
		}
		return err
	}
	r.LoggedIn = true
	r.Login = &info
	r.Learnt = r.Learnt.Merge(FromLogin(s, info))
	if at := strings.LastIndexByte(info.Name, '@'); at > 0 {
		r.IgnoresDomain = acceptsAnyDomain(ctx, s, opts, info.Name[:at], password)
		if r.IgnoresDomain {
			r.Notes = append(r.Notes, "the server ignores the domain of user names (it accepted "+info.Name[:at]+"@"+foreignDomain+
				"): first logins are then allowed only for its default domain")
		}
	}
	if s.LoginForm == LoginAuto {
		r.Notes = append(r.Notes, fmt.Sprintf("the server accepts the %s form of user names (%q)", info.Form, info.Name))
		if info.Form == LoginLocal {
			r.Notes = append(r.Notes, fmt.Sprintf("bare user names are tried only for addresses of the old server's default domain: set it to %s if the old server's bare names are that domain's", s.DefaultDomain))
		}
	}
	// capabilities often grow after login
	caps, err := runCap(ctx, c)
	if err != nil {
		r.Error = err.Error()
		r.Err = err
		r.Summary = "logged in, then the connection failed: " + err.Error()
		return err
	}
	r.Capabilities = capList(caps)
	r.Notes = append(r.Notes, capNotes(caps)...)
	r.Learnt.Capabilities, r.Learnt.IgnoresDomain = r.Capabilities, r.IgnoresDomain

	if caps.Has(imap.CapNamespace) || caps.Has(imap.CapIMAP4rev2) {
		var ns *imap.NamespaceData
		err := withContext(ctx, c, func() error {
			var err error
			ns, err = c.Namespace().Wait()
			return err
		})
		if err != nil {
			r.Notes = append(r.Notes, "NAMESPACE failed: "+err.Error())
		} else {
			add := func(kind string, ds []imap.NamespaceDescriptor) {
				for _, d := range ds {
					r.Namespaces = append(r.Namespaces, Namespace{Kind: kind, Prefix: d.Prefix, Separator: delimString(d.Delim)})
				}
			}
			add("personal", ns.Personal)
			add("other users", ns.Other)
			add("shared", ns.Shared)
			if len(ns.Personal) > 0 {
				r.Separator = delimString(ns.Personal[0].Delim)
				if p := ns.Personal[0].Prefix; p != "" {
					r.Notes = append(r.Notes, fmt.Sprintf("personal mailboxes are under the prefix %q (e.g. %q)", p, p+"Sent"))
				}
			}
			if len(ns.Shared) > 0 || len(ns.Other) > 0 {
				r.Notes = append(r.Notes, "the server has shared or other users' namespaces; only personal mailboxes are migrated")
			}
		}
	}

	var opt *imap.ListOptions
	if caps.Has(imap.CapSpecialUse) && (caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2)) {
		opt = &imap.ListOptions{ReturnSpecialUse: true}
	}
	var list []*imap.ListData
	err = withContext(ctx, c, func() error {
		var err error
		list, err = c.List("", "*", opt).Collect()
		return err
	})
	if err != nil {
		r.Error = err.Error()
		r.Err = err
		r.Summary = "logged in, but listing mailboxes failed: " + err.Error()
		return fmt.Errorf("oldserver: IMAP %s: LIST: %w", r.Addr, err)
	}
	r.Mailboxes = len(list)
	for _, m := range list {
		if r.Separator == "" && m.Delim != 0 {
			r.Separator = delimString(m.Delim)
		}
		for _, a := range m.Attrs {
			switch a {
			case imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrTrash,
				imap.MailboxAttrJunk, imap.MailboxAttrArchive, imap.MailboxAttrAll, imap.MailboxAttrFlagged:
				if r.SpecialUse == nil {
					r.SpecialUse = make(map[string]string)
				}
				if _, dup := r.SpecialUse[string(a)]; !dup {
					r.SpecialUse[string(a)] = strings.TrimPrefix(m.Mailbox, imap.RawMailboxMark)
				}
			}
		}
	}
	for attr, names := range specialNames {
		if _, ok := r.SpecialUse[attr]; ok {
			continue
		}
		if name := guessSpecial(list, names, r.Separator); name != "" {
			if r.SpecialUseGuessed == nil {
				r.SpecialUseGuessed = make(map[string]string)
			}
			r.SpecialUseGuessed[attr] = name
		}
	}
	if len(r.SpecialUse) > 0 {
		r.Notes = append(r.Notes, "special-use folders: "+mapText(r.SpecialUse))
	} else {
		r.Notes = append(r.Notes, "the server marks no folder as Sent, Drafts, Trash, Junk or Archive (no SPECIAL-USE)")
	}
	if len(r.SpecialUseGuessed) > 0 {
		r.Notes = append(r.Notes, "folders that look special by their names: "+mapText(r.SpecialUseGuessed))
	}
	sep := r.Separator
	if sep == "" {
		sep = "none (flat)"
	}
	r.Summary = fmt.Sprintf("logged in as %s at %s; %d mailboxes, hierarchy separator %s", info.Name, r.Addr, r.Mailboxes, quoteSep(sep))
	_ = withContext(ctx, c, func() error { return c.Logout().Wait() })
	return nil
}

var specialNames = map[string][]string{
	string(imap.MailboxAttrSent):    {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Gesendet", "Envoyés", "Gesendete Objekte"},
	string(imap.MailboxAttrDrafts):  {"Drafts", "Draft", "Entwürfe", "Brouillons"},
	string(imap.MailboxAttrTrash):   {"Trash", "Deleted Items", "Deleted Messages", "Bin", "Papierkorb", "Corbeille"},
	string(imap.MailboxAttrJunk):    {"Junk", "Spam", "Junk E-mail", "Junk Email", "Bulk Mail"},
	string(imap.MailboxAttrArchive): {"Archive", "Archives", "Archiv"},
}

func guessSpecial(list []*imap.ListData, names []string, sep string) string {
	for _, want := range names {
		for _, m := range list {
			name := m.Mailbox
			if sep != "" && strings.HasPrefix(strings.ToUpper(name), "INBOX"+sep) {
				name = name[len("INBOX"+sep):]
			}
			if strings.EqualFold(name, want) {
				return strings.TrimPrefix(m.Mailbox, imap.RawMailboxMark)
			}
		}
	}
	return ""
}

func quoteSep(s string) string {
	if len(s) == 1 {
		return "'" + s + "'"
	}
	return s
}

func delimString(r rune) string {
	if r == 0 {
		return ""
	}
	return string(r)
}

func mapText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = %q", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func capList(caps imap.CapSet) []string {
	out := make([]string, 0, len(caps))
	for c := range caps {
		out = append(out, string(c))
	}
	sort.Strings(out)
	return out
}

func runCap(ctx context.Context, c *imapclient.Client) (imap.CapSet, error) {
	var caps imap.CapSet
	err := withContext(ctx, c, func() error {
		var err error
		caps, err = c.Capability().Wait()
		return err
	})
	return caps, err
}

// capNotes explains missing capabilities that change how a migration runs.
func capNotes(caps imap.CapSet) []string {
	var n []string
	rev2 := caps.Has(imap.CapIMAP4rev2)
	if !caps.Has(imap.CapUIDPlus) && !rev2 {
		n = append(n, "no UIDPLUS: fine for copying off the server")
	}
	if !caps.Has(imap.CapIdle) && !rev2 {
		n = append(n, "no IDLE: mail arriving on the old server during the migration is picked up by polling")
	}
	if !caps.Has(imap.CapCondStore) {
		n = append(n, "no CONDSTORE: flag changes on the old server after the copy are found by re-reading all flags")
	}
	if !caps.Has(imap.CapLiteralPlus) && !caps.Has(imap.CapLiteralMinus) && !rev2 {
		n = append(n, "no LITERAL+: slightly slower commands")
	}
	return n
}

// foreignDomain is a domain that exists nowhere (RFC 6761).
const foreignDomain = "mailferry-probe.invalid"

// acceptsAnyDomain reports whether the server logs local@foreignDomain in
// with password, on a connection of its own.
func acceptsAnyDomain(ctx context.Context, s Settings, opts *DialOptions, local, password string) bool {
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return false
	}
	c, err := dialIMAP(ctx, s, opts, v)
	if err != nil {
		return false
	}
	defer c.Close()
	s.LoginForm = LoginFull
	_, err = Login(ctx, c, s, local+"@"+foreignDomain, password)
	return err == nil
}

// ProbeConns is how many IMAP connections at once the probe opens (its own
// and ProbeConns-1 more, greeted and closed without a login) to find a cap
// on connections from one address.
const ProbeConns = 5

// countConns opens ProbeConns-1 connections besides the probe's own and
// records in l the number open when the server turned one away
// (Learnt.ConnCap), or ProbeConns (Learnt.ConnsTried).
func countConns(ctx context.Context, s Settings, opts *DialOptions, l *Learnt) {
	var open []*imapclient.Client
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for len(open)+1 < ProbeConns {
		v, err := newVerifier(s, opts.roots())
		if err != nil {
			return
		}
		c, err := dialIMAP(ctx, s, opts, v)
		if errors.Is(err, ErrTurnedAway) {
			l.ConnCap, l.ConnCapWords = len(open)+1, TurnedAwayWords(err)
			return
		}
		if err != nil {
			return // not a cap: the rest of the probe says what is wrong
		}
		open = append(open, c)
	}
	l.ConnsTried = ProbeConns
}
