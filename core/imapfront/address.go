package imapfront

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// This file reads RFC 5322 address lists the way ENVELOPE and SEARCH need
// them and go-message does not: groups ("undisclosed-recipients:;",
// "team: a@x, b@y;") are kept as RFC 3501 group markers, and addresses
// written with comments and folding whitespace ("<user (c)@ (c) host>")
// are read.

// addressHeaders are the fields ENVELOPE and SEARCH read as address lists.
var addressHeaders = map[string]bool{"from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true}

// parseAddresses reads an address list; a group becomes a start marker
// (Mailbox is the group's name), its members and an end marker (RFC 3501
// 7.4.2). What cannot be read is left out.
func parseAddresses(value string) []imap.Address {
	var out []imap.Address
	for _, item := range splitTop(value, ',', true) {
		if name, members, tail, ok := cutGroup(item); ok {
			out = append(out, imap.Address{Mailbox: name})
			for _, m := range splitTop(members, ',', false) {
				out = append(out, parseMailbox(m)...)
			}
			out = append(out, imap.Address{})
			// A lax writer may leave out the comma after the group.
			for _, m := range splitTop(tail, ',', false) {
				out = append(out, parseMailbox(m)...)
			}
			continue
		}
		out = append(out, parseMailbox(item)...)
	}
	return out
}

// parseMailbox reads one address ("Name <a@b>", "a@b (Name)", with
// comments anywhere); empty or unreadable gives none.
func parseMailbox(s string) []imap.Address {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	route := ""
	l, err := mail.ParseAddressList(s)
	if err != nil || len(l) != 1 {
		var clean string
		clean, route = cleanAddress(s)
		l, err = mail.ParseAddressList(clean)
	}
	if err != nil || len(l) != 1 {
		return localOnly(s)
	}
	mailbox, host, ok := strings.Cut(l[0].Address, "@")
	if !ok || mailbox == "" || host == "" {
		return nil
	}
	return []imap.Address{{Name: l[0].Name, Route: route, Mailbox: mailbox, Host: host}}
}

var spaceAroundAt = regexp.MustCompile(`\s*([@.])\s*`)

// missingDomain is the host of an address written without one ("From:
// d"), as Dovecot 2.3 gives it (imaptest "sort-display-from").
const missingDomain = "MISSING_DOMAIN"

// localOnly reads an address that is a local part alone (one word, comments
// aside): its mailbox with the host missingDomain, rather than no address
// (an ENVELOPE of NIL From). Anything else gives none.
func localOnly(s string) []imap.Address {
	w := strings.TrimSpace(stripComments(s))
	if w == "" || strings.ContainsAny(w, " \t<>@,;:\"()[]\\") {
		return nil
	}
	return []imap.Address{{Mailbox: w, Host: missingDomain}}
}

// cleanAddress removes comments and, in the address proper, the folding
// whitespace around "@" and "." that RFC 5322's obsolete syntax allows. An
// obsolete source route ("<@route:user@host>", "<@a,@b:user@host>", RFC
// 5322 4.4) is taken out of the address and returned apart, as ENVELOPE's
// addr-adl ("@route", "@a,@b"; RFC 3501 9), as Dovecot gives it.
func cleanAddress(s string) (clean, route string) {
	s = stripComments(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j >= 0 {
			addr := strings.Join(strings.Fields(s[i+1:i+j]), "")
			if strings.HasPrefix(addr, "@") {
				if k := strings.IndexByte(addr, ':'); k >= 0 {
					route, addr = validRoute(addr[:k]), addr[k+1:]
				}
			}
			return s[:i] + "<" + addr + ">" + s[i+j+1:], route
		}
	}
	return spaceAroundAt.ReplaceAllString(strings.TrimSpace(s), "$1"), ""
}

// validRoute returns a source route ("@a.example,@b.example") when it is
// one, else "": each "@" and a domain of dot-atom characters or a domain
// literal ("[192.0.2.1]"), UTF-8 allowed (RFC 6532). Anything else (a NUL
// or another control character, 8-bit bytes that are not UTF-8, quotes,
// an empty domain) was given to the client as ENVELOPE's addr-adl as the
// sender wrote it, where Mailbox and Host never carry such bytes (review1):
// the address keeps its mailbox and host, without the route. It also
// vets the routes a summary cache entry holds (summarycache.go).
func validRoute(route string) string {
	if route == "" || len(route) > 1000 || !utf8.ValidString(route) {
		return ""
	}
	for _, hop := range strings.Split(route, ",") {
		domain, ok := strings.CutPrefix(hop, "@")
		if !ok || domain == "" {
			return ""
		}
		if lit, ok := strings.CutPrefix(domain, "["); ok {
			inner, ok := strings.CutSuffix(lit, "]")
			if !ok || strings.ContainsFunc(inner, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '[' || r == ']' || r == '\\' }) {
				return ""
			}
			continue
		}
		if strings.ContainsFunc(domain, func(r rune) bool {
			return r < 0x21 || r == 0x7f || (r < 0x80 && strings.ContainsRune(`"(),:;<>@[\]`, r))
		}) {
			return ""
		}
	}
	return route
}

// stripComments removes RFC 5322 comments (nested, with quoted pairs)
// outside quoted strings.
func stripComments(s string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0) && i+1 < len(s):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
		case quoted:
			b.WriteByte(c)
			if c == '"' {
				quoted = false
			}
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '"':
			quoted = true
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitTop splits s at sep outside quoted strings, comments and angle
// brackets; with groups, also not inside a group ("name: a, b;").
func splitTop(s string, sep byte, groups bool) []string {
	var out []string
	depth, angle, quoted, inGroup := 0, 0, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0):
			i++
		case quoted:
			quoted = c != '"'
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '"':
			quoted = true
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case angle > 0:
		case groups && c == ':':
			inGroup = true
		case groups && c == ';':
			inGroup = false
		case c == sep && !inGroup:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// cutGroup splits "name: members; tail" into its name, members and what
// follows the group.
func cutGroup(item string) (name, members, tail string, ok bool) {
	parts := splitTop(item, ':', false)
	if len(parts) < 2 {
		return "", "", "", false
	}
	name = strings.TrimSpace(stripComments(parts[0]))
	rest := splitTop(strings.Join(parts[1:], ":"), ';', false)
	members = rest[0]
	tail = strings.Join(rest[1:], ";")
	if unq, err := unquote(name); err == nil {
		name = unq
	}
	if name == "" {
		name = "undisclosed-recipients"
	}
	return name, members, tail, true
}

// unquote undoes a quoted string.
func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s, nil
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// hasGroup reports whether an address list holds a group.
func hasGroup(value string) bool {
	return len(splitTop(value, ':', false)) > 1
}

// envelopeGroups replaces the address lists of env that hold groups with
// ones that keep them (go-message drops groups), and those go-message read
// nothing from with what parseAddresses reads.
func envelopeGroups(env *imap.Envelope, h gomessage.Header) {
	for _, f := range []struct {
		key string
		l   *[]imap.Address
	}{{"From", &env.From}, {"Sender", &env.Sender}, {"Reply-To", &env.ReplyTo}, {"To", &env.To}, {"Cc", &env.Cc}, {"Bcc", &env.Bcc}} {
		v, err := h.Text(f.key)
		if err != nil {
			v = h.Get(f.key)
		}
		if v != "" && (hasGroup(v) || len(*f.l) == 0) {
			// Groups, and fields go-message read no address from (a
			// local part alone, a source route).
			*f.l = parseAddresses(v)
		}
	}
}

// matchAddresses reports whether an address field holds pattern (lower
// case) in an address ("user@host") or a name, as read by parseAddresses.
func matchAddresses(value, pattern string) bool {
	for _, a := range parseAddresses(value) {
		if a.Host == "" {
			continue // a group marker
		}
		if strings.Contains(strings.ToLower(a.Mailbox+"@"+a.Host), pattern) || strings.Contains(strings.ToLower(a.Name), pattern) {
			return true
		}
	}
	return false
}
