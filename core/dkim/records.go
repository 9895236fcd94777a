package dkim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Record is a DNS record the admin publishes for a domain.
type Record struct {
	// Name is the owner name, without the final dot:
	// "mf202612e._domainkey.example.com", "example.com",
	// "_dmarc.example.com".
	Name string
	// Type is the record type; always "TXT" here.
	Type string
	// Value is the record's text as one string, the way DNS providers'
	// web forms take it (they split long texts themselves).
	Value string
	// Purpose says what it is for, in words for the admin:
	// "DKIM Ed25519 key (active)", "SPF", "DMARC".
	Purpose string
	// Note says what to do, when there is more to it than publishing:
	// a pending key's activation, a retired key's removal date, an SPF
	// record to merge with an existing one.
	Note string
}

// String is the record as one line: `<name> TXT "<value>"`.
func (r Record) String() string {
	return r.Name + " " + r.Type + " " + quoteTXT(r.Value)
}

// Zone is the record as a zone file line (RFC 1035 section 5.1), the text
// split in strings of at most 255 bytes as a TXT record needs (RFC 7208
// section 3.3, RFC 6376 section 3.6.2.2).
func (r Record) Zone() string {
	var parts []string
	v := r.Value
	for len(v) > 255 {
		parts = append(parts, quoteTXT(v[:255]))
		v = v[255:]
	}
	parts = append(parts, quoteTXT(v))
	return r.Name + ". IN " + r.Type + " " + strings.Join(parts, " ")
}

func quoteTXT(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// SPFPolicy is what the admin tells about where the domain's mail leaves
// from; the zero value means "from the hosts of the domain's MX records"
// (Mailferry delivering directly, being the MX).
type SPFPolicy struct {
	// IPs are addresses or prefixes (IPv4 or IPv6) mail leaves from,
	// published as ip4:/ip6: mechanisms: Mailferry's public address when
	// it is not the MX host.
	IPs []string
	// Includes are domains whose SPF record is included (a smarthost
	// provider's, e.g. "_spf.provider.example").
	Includes []string
	// NoMX leaves the "mx" mechanism out (mail never leaves from the MX
	// hosts, e.g. every message goes through a smarthost).
	NoMX bool
}

// SPFRecord returns the SPF record (RFC 7208) to publish at domain for
// policy p: "v=spf1 mx -all", with p's ip4:/ip6:/include: mechanisms before
// the final -all. Invalid addresses or domains are an error wrapping
// ErrInvalid.
func SPFRecord(domain string, p SPFPolicy) (Record, error) {
	d, err := canonicalDomain(domain)
	if err != nil {
		return Record{}, err
	}
	terms := []string{"v=spf1"}
	if !p.NoMX {
		terms = append(terms, "mx")
	}
	for _, s := range p.IPs {
		s = strings.TrimSpace(s)
		var pfx netip.Prefix
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil && a.Zone() != "" {
				err = errors.New("zone")
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return Record{}, fmt.Errorf("%w: SPF address %q is not an IP address or prefix", ErrInvalid, s)
		}
		pfx = pfx.Masked()
		mech := "ip4:"
		if pfx.Addr().Is6() && !pfx.Addr().Is4In6() {
			mech = "ip6:"
		} else if pfx.Addr().Is4In6() {
			return Record{}, fmt.Errorf("%w: SPF address %q: write IPv4 addresses as a.b.c.d", ErrInvalid, s)
		}
		if pfx.IsSingleIP() {
			terms = append(terms, mech+pfx.Addr().String())
		} else {
			terms = append(terms, mech+pfx.String())
		}
	}
	for _, inc := range p.Includes {
		id, err := dnsName(inc)
		if err != nil {
			return Record{}, fmt.Errorf("SPF include: %w", err)
		}
		terms = append(terms, "include:"+id)
	}
	if len(terms) == 1 {
		return Record{}, fmt.Errorf("%w: an SPF policy without mx names no address or include", ErrInvalid)
	}
	terms = append(terms, "-all")
	return Record{
		Name:    d,
		Type:    "TXT",
		Value:   strings.Join(terms, " "),
		Purpose: "SPF",
		Note:    "a domain has one SPF record: if it has one already, merge the two",
	}, nil
}

// dnsName checks a DNS name that need not be a host name (SPF includes
// such as _spf.provider.example have underscores): ASCII letters, digits,
// hyphens and underscores in labels of 1 to 63 bytes, at most 253 bytes.
// It returns it lower-cased, without a final dot.
func dnsName(s string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%w: DNS name %q is empty or too long", ErrInvalid, sanitize(s))
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("%w: DNS name %q has an empty or long label", ErrInvalid, sanitize(s))
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: DNS name %q has a character other than a letter, digit, - or _", ErrInvalid, sanitize(s))
			}
		}
	}
	return n, nil
}

// DMARCRecord returns a DMARC record (RFC 7489) to start with at domain:
// policy none (nothing is rejected for failing) with aggregate reports to
// postmaster@domain. Once reports show all mail passes, the admin may
// raise p= to quarantine or reject.
func DMARCRecord(domain string) (Record, error) {
	d, err := canonicalDomain(domain)
	if err != nil {
		return Record{}, err
	}
	return Record{
		Name:    "_dmarc." + d,
		Type:    "TXT",
		Value:   "v=DMARC1; p=none; rua=mailto:postmaster@" + d,
		Purpose: "DMARC",
		Note:    "p=none only reports; raise it to quarantine or reject once reports show all mail passes",
	}, nil
}

// DKIMRecords returns the key records of the domain's listed generations
// (pending, active, retired; see Generations): one per key, named
// <selector>._domainkey.<domain>. A domain without keys gets them first.
func (k *Keyring) DKIMRecords(domain string) ([]Record, error) {
	if _, err := k.Active(domain); err != nil {
		return nil, err
	}
	gens, err := k.Generations(domain)
	if err != nil {
		return nil, err
	}
	d, err := canonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, g := range gens {
		for _, key := range g.Keys {
			name := "Ed25519"
			if key.Algorithm == RSA {
				name = "RSA-2048"
			}
			r := Record{
				Name:    key.Selector + "._domainkey." + d,
				Type:    "TXT",
				Value:   key.TXT(),
				Purpose: fmt.Sprintf("DKIM %s key (%s)", name, g.State),
			}
			switch g.State {
			case Pending:
				r.Note = "publish now; it signs mail once activated"
			case Retired:
				r.Note = "keep until " + g.KeepUntil.UTC().Format("2006-01-02") + ", then remove"
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Records returns every record to publish for domain: its DKIM keys
// (DKIMRecords), then SPF (SPFRecord with spf) and DMARC (DMARCRecord).
func (k *Keyring) Records(domain string, spf SPFPolicy) ([]Record, error) {
	out, err := k.DKIMRecords(domain)
	if err != nil {
		return nil, err
	}
	s, err := SPFRecord(domain, spf)
	if err != nil {
		return nil, err
	}
	dm, err := DMARCRecord(domain)
	if err != nil {
		return nil, err
	}
	return append(out, s, dm), nil
}

// Publication is what DNS serves for a Record.
type Publication string

const (
	// Published: DNS serves the record (for DKIM: the same key; for SPF:
	// the same text; for DMARC: a DMARC record).
	Published Publication = "published"
	// Missing: no such record.
	Missing Publication = "missing"
	// Different: a record of that kind with another text (another key, or
	// an SPF record to merge with).
	Different Publication = "different"
	// Unknown: DNS did not answer (a temporary error).
	Unknown Publication = "unknown"
)

// RecordStatus is a Record and what DNS serves for it.
type RecordStatus struct {
	Record Record
	Status Publication
	// Found are the texts of that kind DNS serves (empty when Missing).
	Found []string
	// Err is the DNS error behind Unknown.
	Err error
}

// TXTResolver is what CheckRecords needs; *net.Resolver and Resolver have it.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// CheckRecords asks r what DNS serves for each record.
func CheckRecords(ctx context.Context, r TXTResolver, recs []Record) []RecordStatus {
	out := make([]RecordStatus, 0, len(recs))
	for _, rec := range recs {
		out = append(out, checkRecord(ctx, r, rec))
	}
	return out
}

func checkRecord(ctx context.Context, r TXTResolver, rec Record) RecordStatus {
	st := RecordStatus{Record: rec}
	txts, err := r.LookupTXT(ctx, rec.Name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			st.Status = Missing
			return st
		}
		st.Status, st.Err = Unknown, fmt.Errorf("dkim: looking up %s TXT: %w", rec.Name, err)
		return st
	}
	kind := recordKind(rec.Value)
	for _, t := range txts {
		if recordKind(t) == kind {
			st.Found = append(st.Found, t)
		}
	}
	st.Status = Missing
	for _, t := range st.Found {
		if sameRecord(kind, rec.Value, t) {
			st.Status = Published
			return st
		}
		st.Status = Different
	}
	return st
}

// recordKind is "dkim", "spf", "dmarc" or "" for a TXT record's text.
func recordKind(txt string) string {
	t := strings.ToLower(strings.TrimSpace(txt))
	switch {
	case strings.HasPrefix(t, "v=spf1") && (len(t) == 6 || t[6] == ' '):
		return "spf"
	case strings.HasPrefix(t, "v=dmarc1"):
		return "dmarc"
	case strings.HasPrefix(t, "v=dkim1") || strings.Contains(t, "p="):
		return "dkim"
	}
	return ""
}

// sameRecord compares a wanted record with one DNS serves, by what counts
// for its kind.
func sameRecord(kind, want, got string) bool {
	switch kind {
	case "dkim":
		w, g := tags(want), tags(got)
		return w["p"] == g["p"] && strings.EqualFold(w["k"], orDefault(g["k"], "rsa"))
	case "spf":
		return strings.EqualFold(strings.Join(strings.Fields(want), " "), strings.Join(strings.Fields(got), " "))
	case "dmarc":
		return true // any DMARC policy the admin chose counts
	}
	return want == got
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tags parses a tag=value list (RFC 6376 section 3.2), whitespace removed
// from values.
func tags(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		m[strings.ToLower(strings.TrimSpace(k))] = strings.Join(strings.Fields(v), "")
	}
	return m
}
