package dkim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/mail"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS that verification asks; *net.Resolver is one. Tests
// pass their own. As net.Resolver does, a name without records of the type
// asked is reported as a *net.DNSError with IsNotFound set, and a failure to
// get an answer as a *net.DNSError with IsTemporary or IsTimeout set,
// returned as they are (not wrapped: the libraries behind this look at the
// error's type).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var (
	_ Resolver        = (*net.Resolver)(nil)
	_ spf.DNSResolver = Resolver(nil)
)

// Session is what the SMTP session knew of a message's sender.
type Session struct {
	// ClientIP is the connecting client's address.
	ClientIP netip.Addr
	// HELO is the name the client gave in EHLO/HELO.
	HELO string
	// MailFrom is the envelope sender (MAIL FROM), "" for the null
	// reverse-path.
	MailFrom string
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Resolver answers DNS questions; required.
	Resolver Resolver
	// Hostname is this server's name, the authserv-id of the header
	// (RFC 8601 section 2.5); required.
	Hostname string
	// MaxSignatures bounds the DKIM signatures checked per message
	// (default 5): each costs DNS questions and hashing of the message.
	MaxSignatures int
}

// Verifier checks inbound mail's SPF, DKIM and DMARC. It holds no state
// between messages and is safe for concurrent use.
type Verifier struct {
	r       Resolver
	host    string
	maxSigs int
}

// NewVerifier returns a Verifier; a missing Resolver or Hostname is an
// error.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if o.Resolver == nil {
		return nil, errors.New("dkim: verifier needs a resolver")
	}
	host := sanitize(o.Hostname)
	if host == "" {
		return nil, errors.New("dkim: verifier needs a host name (authserv-id)")
	}
	v := &Verifier{r: o.Resolver, host: host, maxSigs: o.MaxSignatures}
	if v.maxSigs <= 0 {
		v.maxSigs = 5
	}
	return v, nil
}

// Results are the outcomes of the checks of one message.
type Results struct {
	SPF   authres.SPFResult
	DKIM  []authres.DKIMResult
	DMARC authres.DMARCResult
}

// AuthenticationResults checks msg as received in session s and returns the
// Authentication-Results header field to prepend to it (RFC 8601; name,
// value, folded between results, final CRLF). It never fails: a check that
// could not be made says so in its result (temperror, permerror, none).
// The results are facts for the reader's filters; mail is never refused or
// dropped on them.
//
// The relay calls this on inbound mail from outside (not on submission)
// before delivering it. RFC 8601 section 5 asks that Authentication-Results
// fields already in the message that claim this server's authserv-id be
// removed or renamed before delivery; that is the relay's part
// (core/relay authresults.go renames them).
func (v *Verifier) AuthenticationResults(ctx context.Context, s Session, msg []byte) string {
	return v.Check(ctx, s, msg).Header(v.host)
}

// Header formats the results as an Authentication-Results header field with
// authserv-id host, one result per line.
func (r *Results) Header(host string) string {
	results := []authres.Result{&r.SPF}
	for i := range r.DKIM {
		results = append(results, &r.DKIM[i])
	}
	results = append(results, &r.DMARC)
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(sanitize(host))
	for _, res := range results {
		// authres.Format writes "<id>; <method>=<value> <params>".
		one := authres.Format("x", []authres.Result{res})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(one, "x; ")))
	}
	b.WriteString("\r\n")
	return b.String()
}

// Check runs the SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489)
// checks of msg as received in session s.
func (v *Verifier) Check(ctx context.Context, s Session, msg []byte) *Results {
	res := &Results{}
	spfDomain := v.checkSPF(ctx, s, &res.SPF)
	res.DKIM = v.checkDKIM(ctx, msg)
	v.checkDMARC(ctx, msg, spfDomain, res)
	return res
}

// checkSPF fills r and returns the domain SPF checked (the MAIL FROM
// domain, or the HELO name for the null reverse-path).
func (v *Verifier) checkSPF(ctx context.Context, s Session, r *authres.SPFResult) string {
	helo := sanitize(s.HELO)
	from := sanitize(s.MailFrom)
	domain := ""
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		domain = from[i+1:]
		r.From = from
	} else {
		// RFC 7208 section 2.4: the null reverse-path is checked as
		// postmaster@<HELO>; RFC 8601 section 2.7.2 then names the HELO.
		domain = helo
		r.Helo = helo
	}
	if !s.ClientIP.IsValid() {
		r.Value, r.Reason = authres.ResultPermError, "no client address"
		return domain
	}
	if domain == "" {
		r.Value, r.Reason = authres.ResultNone, "no domain to check"
		return domain
	}
	ip := net.IP(s.ClientIP.Unmap().AsSlice())
	result, err := spf.CheckHostWithSender(ip, helo, from,
		spf.WithResolver(v.r), spf.WithContext(ctx))
	r.Value = authres.ResultValue(result)
	if err != nil && result != spf.Pass {
		r.Reason = sanitize(err.Error())
	}
	return strings.ToLower(domain)
}

// checkDKIM verifies the message's DKIM signatures (at most maxSigs).
func (v *Verifier) checkDKIM(ctx context.Context, msg []byte) []authres.DKIMResult {
	if h := scanHeader(msg); h.tooLarge() {
		return []authres.DKIMResult{{Value: authres.ResultPermError, Reason: errHeaderLarge}}
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return v.r.LookupTXT(ctx, name) },
		MaxVerifications: v.maxSigs,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// The message could not be read as header + body at all.
		return []authres.DKIMResult{{Value: authres.ResultPermError, Reason: sanitize(err.Error())}}
	}
	if len(verifs) == 0 {
		return []authres.DKIMResult{{Value: authres.ResultNone}}
	}
	out := make([]authres.DKIMResult, 0, len(verifs))
	for _, vf := range verifs {
		r := authres.DKIMResult{Value: authres.ResultPass, Domain: sanitize(vf.Domain), Identifier: sanitize(vf.Identifier)}
		switch {
		case vf.Err == nil:
		case dkim.IsTempFail(vf.Err):
			r.Value = authres.ResultTempError
		case dkim.IsPermFail(vf.Err):
			r.Value = authres.ResultPermError
		default:
			r.Value = authres.ResultFail
		}
		if vf.Err != nil {
			r.Reason = sanitize(vf.Err.Error())
		}
		out = append(out, r)
	}
	return out
}

// checkDMARC fills res.DMARC from the From domain's policy and the SPF and
// DKIM results (RFC 7489 sections 3.1 and 6.6).
func (v *Verifier) checkDMARC(ctx context.Context, msg []byte, spfDomain string, res *Results) {
	r := &res.DMARC
	from, err := fromDomain(msg)
	if err != nil {
		r.Value, r.Reason = authres.ResultPermError, sanitize(err.Error())
		return
	}
	r.From = sanitize(from)
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return v.r.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(from, lookup)
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(from); org != from {
			rec, err = dmarc.LookupWithOptions(org, lookup)
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		r.Value = authres.ResultNone
		return
	case dmarc.IsTempFail(err):
		r.Value, r.Reason = authres.ResultTempError, sanitize(err.Error())
		return
	case err != nil:
		r.Value, r.Reason = authres.ResultPermError, sanitize(err.Error())
		return
	}
	aligned := func(d string, mode dmarc.AlignmentMode) bool {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if mode == dmarc.AlignmentStrict {
			return d == from
		}
		return d != "" && orgDomain(d) == orgDomain(from)
	}
	if res.SPF.Value == authres.ResultPass && aligned(spfDomain, rec.SPFAlignment) {
		r.Value = authres.ResultPass
		return
	}
	for _, d := range res.DKIM {
		if d.Value == authres.ResultPass && aligned(d.Domain, rec.DKIMAlignment) {
			r.Value = authres.ResultPass
			return
		}
	}
	r.Value = authres.ResultFail
	if rec.Policy != "" {
		r.Reason = "p=" + sanitize(string(rec.Policy))
	}
}

// fromDomain returns the lower-cased domain of the message's one From
// address (RFC 7489 section 6.6.1: a message with no From, several From
// fields or several addresses in it has no single author domain).
func fromDomain(msg []byte) (string, error) {
	h := scanHeader(msg)
	froms := fieldsNamed(h.fields, "From")
	switch {
	case h.fromPast:
		return "", errors.New("a From header field past the first 1000 fields")
	case len(froms) == 0:
		return "", errors.New("no From header field")
	case len(froms) > 1:
		return "", errors.New("several From header fields")
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// Display names in other charsets do not matter here.
		CharsetReader: func(_ string, in io.Reader) (io.Reader, error) { return in, nil },
	}}
	list, err := p.ParseList(froms[0])
	if err != nil {
		return "", errors.New("unreadable From address")
	}
	if len(list) != 1 {
		return "", errors.New("not one From address")
	}
	i := strings.LastIndexByte(list[0].Address, '@')
	if i < 0 || i == len(list[0].Address)-1 {
		return "", errors.New("From address without a domain")
	}
	d, err := canonicalDomain(list[0].Address[i+1:])
	if err != nil {
		return "", errors.New("From address with an invalid domain")
	}
	return d, nil
}

// orgDomain is a domain's organizational domain (RFC 7489 section 3.2),
// from the public suffix list.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// sanitize makes a value safe in a header field: printable ASCII only
// (control characters, line ends, quotes, backslashes and non-ASCII bytes
// dropped), at most 200 bytes.
func sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			continue
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}
