// Package addr is the one rule for mail addresses used as account names:
// every front end (IMAP, POP3, SMTP AUTH and RCPT), the store and the
// migration engine bring an address to its canonical form before any
// lookup or create, so that one person has one account.
//
// The canonical form of an address (RFC 5321 mailbox, RFC 6531 for UTF-8):
//   - exactly one "@", a non-empty local part and a domain;
//   - the local part is a dot-atom (no quoted strings, no leading, trailing
//     or doubled dot), of letters, digits and ! # $ & ' + - = ? ^ _ ` { | } ~
//     (and UTF-8 letters), without the routing characters "%" and "!" and
//     without the master-user separator "*"; it is lower-cased, as the
//     store compares local parts case-insensitively;
//   - the domain is lower-cased, has no trailing dot, and is in IDNA
//     A-label form ("bücher.example" becomes "xn--bcher-kva.example");
//     address literals ("[192.0.2.1]") are not account domains;
//   - at most 64 bytes of local part, 253 of domain, 254 in all (RFC 5321
//     section 4.5.3.1 and its erratum on the path length).
//
// A name longer than MaxInput bytes is refused before any other work: a
// caller must neither log nor keep it.
package addr

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxInput is the longest name Canonical looks at; a longer one is refused
// at once.
const MaxInput = 320

// Length limits of the canonical form.
const (
	maxLocal  = 64
	maxDomain = 253
	maxPath   = 254
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid address")

// profile is IDNA's lookup profile (UTS #46 mapping, RFC 5891 checks).
var profile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(true))

// Canonical returns the canonical form of address, or an error wrapping
// ErrInvalid that quotes at most the first 64 bytes of it.
func Canonical(address string) (string, error) {
	if len(address) > MaxInput {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxInput)
	}
	at := strings.IndexByte(address, '@')
	if at < 0 || strings.IndexByte(address[at+1:], '@') >= 0 {
		return "", fmt.Errorf("%w: %q must have exactly one @", ErrInvalid, clip(address))
	}
	local, err := Local(address[:at])
	if err != nil {
		return "", err
	}
	domain, err := Domain(address[at+1:])
	if err != nil {
		return "", err
	}
	if len(local)+1+len(domain) > maxPath {
		return "", fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalid, clip(address), maxPath)
	}
	return local + "@" + domain, nil
}

// Split returns the local part and domain of a canonical address (as
// Canonical returns it, which it checks).
func Split(address string) (local, domain string, err error) {
	c, err := Canonical(address)
	if err != nil {
		return "", "", err
	}
	local, domain, _ = strings.Cut(c, "@")
	return local, domain, nil
}

// Local returns the canonical form of a local part.
func Local(local string) (string, error) {
	if local == "" {
		return "", fmt.Errorf("%w: empty local part", ErrInvalid)
	}
	if len(local) > maxLocal {
		return "", fmt.Errorf("%w: local part %q is longer than %d bytes", ErrInvalid, clip(local), maxLocal)
	}
	if !utf8.ValidString(local) {
		return "", fmt.Errorf("%w: local part is not UTF-8", ErrInvalid)
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", fmt.Errorf("%w: local part %q is not a dot-atom", ErrInvalid, clip(local))
	}
	for _, c := range local {
		if !localRune(c) {
			return "", fmt.Errorf("%w: local part %q may not hold %q", ErrInvalid, clip(local), c)
		}
	}
	return strings.ToLower(local), nil
}

// localRune reports whether c may appear in a canonical local part: RFC
// 5322 atext and "." without the routing characters "%" and "!" and the
// master-user separator "*", or a printable non-ASCII letter or digit
// (RFC 6531).
func localRune(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c < 0x80:
		return strings.ContainsRune("#$&'+-=?^_`{|}~.", c)
	}
	return unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.IsMark(c)
}

// Domain returns the canonical form of a domain name: lower case, no
// trailing dot, IDNA A-labels, each label a letter-digit-hyphen name.
func Domain(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", fmt.Errorf("%w: empty domain", ErrInvalid)
	}
	if len(name) > MaxInput {
		return "", fmt.Errorf("%w: domain longer than %d bytes", ErrInvalid, MaxInput)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: domain is not UTF-8", ErrInvalid)
	}
	a, err := profile.ToASCII(name)
	if err == nil {
		// An A-label must decode to a valid U-label: ToASCII lets some
		// malformed punycode through that it then refuses to read back.
		_, err = profile.ToUnicode(a)
	}
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrInvalid, clip(name), idnaReason(err))
	}
	a = strings.ToLower(a)
	if len(a) > maxDomain {
		return "", fmt.Errorf("%w: domain %q is longer than %d bytes", ErrInvalid, clip(name), maxDomain)
	}
	labels := strings.Split(a, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: domain %q has an empty, long or hyphen-edged label", ErrInvalid, clip(name))
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: domain %q may not hold %q", ErrInvalid, clip(name), rune(c))
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%w: %q is an address, not a domain name", ErrInvalid, clip(name))
	}
	return a, nil
}

// Unicode returns a canonical domain in U-label form for display
// ("xn--bcher-kva.example" as "bücher.example"); a name it cannot convert
// is returned as it is.
func Unicode(domain string) string {
	u, err := idna.Display.ToUnicode(domain)
	if err != nil {
		return domain
	}
	return u
}

func idnaReason(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "idna: ")
	return s
}

// clip keeps an error message bounded and printable.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
