package relay

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"mailferry/core/auth/addr"
)

// errRcptForm is wrapped by every refusal of rcptAddress.
var errRcptForm = errors.New("relay: recipient form refused")

// maxPath is the longest canonical recipient (RFC 5321 section 4.5.3.1.3
// and its erratum: 256 octets of path, angle brackets included).
const maxPath = 254

// rcptAddress applies the recipient rules to an RCPT TO address as go-smtp
// hands it to Session.Rcpt (its parser has dropped a source route,
// "<@a,@b:user@domain>" becoming "user@domain", and has removed the quotes
// of a quoted local part, `"a b"@x` becoming "a b@x"). It returns the
// recipient's canonical form and its domain, or an error wrapping
// errRcptForm.
//
// strict is set for a sender that did not authenticate and is not in a
// trusted network. Such a sender can only reach accounts of local domains
// (and their old servers, which trust what we hand them), so its recipient
// must be an account name by the project's one rule, addr.Canonical: one
// "@", a dot-atom local part without the routing characters "%" and "!"
// (so no quoted local part other than one that says the same as a
// dot-atom: `"bob"@x` is bob@x, `"a@b"@x` and `"a b"@x` are refused), and
// a domain name. The local part is lower-cased, as the store compares
// account names without case.
//
// Otherwise (an authenticated user, a trusted network, who may relay
// anywhere) the last "@" separates the local part, kept as given and
// quoted only where RFC 5321 section 4.1.2 needs it (a local part that is
// not a Dot-string), from a domain name. Control characters are never
// allowed.
//
// In both cases the domain is lower-cased, in IDNA A-label form and
// without a trailing dot (addr.Domain); address literals are refused.
func rcptAddress(to string, strict bool) (canon, domain string, err error) {
	if len(to) > addr.MaxInput {
		return "", "", fmt.Errorf("%w: longer than %d bytes", errRcptForm, addr.MaxInput)
	}
	if !utf8.ValidString(to) {
		return "", "", fmt.Errorf("%w: not UTF-8", errRcptForm)
	}
	if strict {
		// These are addr.Canonical's rules too; they are spelled out so
		// that the relay's own refusal does not hang on another package.
		switch {
		case strings.ContainsAny(to, "%!"):
			return "", "", fmt.Errorf("%w: routing character in %q", errRcptForm, clipAddr(to))
		case strings.Count(to, "@") != 1:
			return "", "", fmt.Errorf("%w: %q must have exactly one @", errRcptForm, clipAddr(to))
		case strings.ContainsAny(to, ":,"):
			return "", "", fmt.Errorf("%w: source route in %q", errRcptForm, clipAddr(to))
		}
		c, err := addr.Canonical(to)
		if err != nil {
			return "", "", fmt.Errorf("%w: %w", errRcptForm, err)
		}
		_, domain, _ = strings.Cut(c, "@")
		return c, domain, nil
	}
	at := strings.LastIndexByte(to, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%w: %q has no @", errRcptForm, clipAddr(to))
	}
	domain, err = addr.Domain(to[at+1:])
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", errRcptForm, err)
	}
	local, err := quoteLocal(to[:at])
	if err != nil {
		return "", "", err
	}
	canon = local + "@" + domain
	if len(canon) > maxPath {
		return "", "", fmt.Errorf("%w: longer than %d bytes", errRcptForm, maxPath)
	}
	return canon, domain, nil
}

// quoteLocal returns a local part as RFC 5321 section 4.1.2 writes it: as
// it is when it is a Dot-string, else as a Quoted-string (with "\" before
// `"` and "\"). Empty local parts, control characters and local parts over
// 64 octets (quotes included) are refused.
func quoteLocal(local string) (string, error) {
	if local == "" {
		return "", fmt.Errorf("%w: empty local part", errRcptForm)
	}
	for _, c := range local {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return "", fmt.Errorf("%w: control character in the local part", errRcptForm)
		}
	}
	if !dotString(local) {
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < len(local); i++ {
			if local[i] == '"' || local[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(local[i])
		}
		b.WriteByte('"')
		local = b.String()
	}
	if len(local) > 64 {
		return "", fmt.Errorf("%w: local part longer than 64 octets", errRcptForm)
	}
	return local, nil
}

// dotString reports whether s is an RFC 5321 Dot-string: atoms of atext
// (RFC 6531 adds UTF-8 beyond ASCII) joined by single dots.
func dotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", c):
		default:
			return false
		}
	}
	return true
}

// rcptDomain returns the domain of a canonical recipient: what follows its
// last "@" (a quoted local part may hold "@").
func rcptDomain(rcpt string) string {
	return rcpt[strings.LastIndexByte(rcpt, '@')+1:]
}

// clipAddr keeps an address quoted in an error short.
func clipAddr(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for !utf8.ValidString(s) && s != "" {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}
