package oldserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Host is an old server's address: a DNS host name or an IP address.
// The zero Host is invalid. Hosts compare with ==.
type Host struct {
	name string     // lowercase DNS name without a trailing dot, or ""
	ip   netip.Addr // valid for an address literal
}

// ParseHost parses an old server's host as an admin would type it:
//
//   - a DNS host name (RFC 1123 §2.1): letters, digits and hyphens in
//     labels of 1 to 63 characters separated by dots, at most 253 characters,
//     an optional trailing dot; case is folded to lower case. Internationalized
//     names must be given in their xn-- (punycode) form.
//   - an IPv4 address literal "[192.0.2.7]" or an IPv6 address literal
//     "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3). "[2001:db8::1]" without the
//     tag is accepted too, as in URLs.
//   - a bare IPv4 address "192.0.2.7", accepted as the address literal
//     [192.0.2.7] (a name whose last label is all digits cannot be a DNS
//     host name, so this is not ambiguous).
//
// A bare IPv6 address, a port ("host:993"), a URL, spaces, zones ("%eth0"),
// RFC 5321 general address literals and invalid labels are rejected with
// an error that says what to write instead.
func ParseHost(s string) (Host, error) {
	bad := func(format string, args ...any) (Host, error) {
		return Host{}, &HostError{Input: s, Problem: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return bad("the host is empty")
	}
	if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n\v\f") {
		return bad("the host contains spaces")
	}
	if strings.Contains(s, "://") {
		return bad("give only the host name, not a URL")
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			if r > 0x7f {
				return bad("non-ASCII characters: give an internationalized name in its xn-- form")
			}
			return bad("the host contains a control character")
		}
	}
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return bad("an address literal must end with ']'")
		}
		inner := s[1 : len(s)-1]
		if inner == "" {
			return bad("the address literal is empty")
		}
		if len(inner) >= 5 && strings.EqualFold(inner[:5], "IPv6:") {
			return parseIPv6(s, inner[5:])
		}
		if i := strings.IndexByte(inner, ':'); i >= 0 {
			tag := inner[:i]
			if isLDHTag(tag) && strings.Count(inner, ":") == 1 {
				return bad("the address literal tag %q is not supported: use [IPv4] or [IPv6:address]", tag)
			}
			return parseIPv6(s, inner)
		}
		ip, err := netip.ParseAddr(inner)
		if err != nil || !ip.Is4() {
			return bad("%q is not an IPv4 address (four numbers 0-255 separated by dots)", inner)
		}
		return Host{ip: ip}, nil
	}
	if strings.HasSuffix(s, "]") {
		return bad("an address literal must start with '['")
	}
	if strings.Contains(s, ":") {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() {
			return bad("an IPv6 address must be written in brackets: [IPv6:%s]", ip)
		}
		if h, p, err := net.SplitHostPort(s); err == nil && h != "" && p != "" {
			return bad("give the port in the port field, not in the host (%q)", h)
		}
		return bad("the host contains ':'")
	}
	if strings.Contains(s, "%") {
		return bad("zone suffixes ('%%') are not allowed")
	}
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return bad("the host is only a dot")
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; allDigits(last) {
		ip, err := netip.ParseAddr(name)
		if err != nil || !ip.Is4() || strings.HasSuffix(s, ".") {
			return bad("%q is neither a valid IPv4 address nor a host name (the last part of a host name cannot be all digits)", s)
		}
		return Host{ip: ip}, nil
	}
	if len(name) > 253 {
		return bad("the host name is %d characters long; at most 253 are allowed", len(name))
	}
	for _, l := range labels {
		switch {
		case l == "":
			return bad("the host name has an empty part (two dots in a row, or a leading dot)")
		case len(l) > 63:
			return bad("the part %q is longer than 63 characters", l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return bad("the part %q begins or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad("the character %q is not allowed in a host name (only letters, digits, '-' and '.')", c)
			}
		}
	}
	return Host{name: strings.ToLower(name)}, nil
}

func parseIPv6(input, addr string) (Host, error) {
	ip, err := netip.ParseAddr(addr)
	switch {
	case err != nil, !ip.Is6():
		return Host{}, &HostError{Input: input, Problem: fmt.Sprintf("%q is not an IPv6 address", addr)}
	case ip.Zone() != "":
		return Host{}, &HostError{Input: input, Problem: "zone suffixes ('%') are not allowed"}
	case ip.Is4In6():
		// RFC 5321 allows the IPv4-mapped form; it names an IPv4 host.
		return Host{ip: ip.Unmap()}, nil
	}
	return Host{ip: ip}, nil
}

func isLDHTag(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return !allHex(s)
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// HostError is returned by ParseHost; Problem says in plain words what is
// wrong with Input.
type HostError struct {
	Input   string
	Problem string
}

// Error implements error.
func (e *HostError) Error() string {
	return fmt.Sprintf("oldserver: host %q: %s", e.Input, e.Problem)
}

// MustParseHost is ParseHost for constants in tests and examples; it panics
// on an invalid host.
func MustParseHost(s string) Host {
	h, err := ParseHost(s)
	if err != nil {
		panic(err)
	}
	return h
}

// HostFromIP returns the Host for an IP address (an address literal).
func HostFromIP(ip netip.Addr) Host {
	return Host{ip: ip.Unmap().WithZone("")}
}

// IsZero reports whether h is the zero (invalid) Host.
func (h Host) IsZero() bool { return h.name == "" && !h.ip.IsValid() }

// IsIP reports whether h is an IP address rather than a DNS name.
func (h Host) IsIP() bool { return h.ip.IsValid() }

// IP returns the address of an address literal, or the zero netip.Addr.
func (h Host) IP() netip.Addr { return h.ip }

// Name returns the DNS name, or "" for an address literal.
func (h Host) Name() string { return h.name }

// String returns the canonical form: "mail.example.org", "[192.0.2.7]" or
// "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3); "" for the zero Host. ParseHost
// accepts it back.
func (h Host) String() string {
	switch {
	case h.ip.Is4():
		return "[" + h.ip.String() + "]"
	case h.ip.IsValid():
		return "[IPv6:" + h.ip.String() + "]"
	}
	return h.name
}

// DialAddr returns "host:port" for net.Dial: the name, or the IP address in
// the form net.JoinHostPort expects.
func (h Host) DialAddr(port int) string {
	return net.JoinHostPort(h.dialHost(), fmt.Sprint(port))
}

func (h Host) dialHost() string {
	if h.ip.IsValid() {
		return h.ip.String()
	}
	return h.name
}

// ServerName returns the name certificates are checked against: the DNS
// name, or the IP address string (matched against IP SANs).
func (h Host) ServerName() string { return h.dialHost() }

// MarshalText implements encoding.TextMarshaler (JSON as the String form).
func (h Host) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseHost; an empty
// text gives the zero Host (which Settings.Validate rejects).
func (h *Host) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Host{}
		return nil
	}
	v, err := ParseHost(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

var errZeroHost = errors.New("no host given")
