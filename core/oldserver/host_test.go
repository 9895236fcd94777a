package oldserver_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"mailferry/core/oldserver"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical String(); "" means an error is expected
		ip      bool
		errPart string // substring of the error
	}{
		{in: "mail.example.org", want: "mail.example.org"},
		{in: "Mail.Example.ORG.", want: "mail.example.org"},
		{in: "localhost", want: "localhost"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "a-b.c-d.e1", want: "a-b.c-d.e1"},
		{in: "1mail.example", want: "1mail.example"},
		{in: strings.Repeat("a", 63) + ".example", want: strings.Repeat("a", 63) + ".example"},
		{in: "[192.0.2.7]", want: "[192.0.2.7]", ip: true},
		{in: "192.0.2.7", want: "[192.0.2.7]", ip: true},
		{in: "[IPv6:2001:db8::1]", want: "[IPv6:2001:db8::1]", ip: true},
		{in: "[ipv6:2001:DB8:0:0:0:0:0:1]", want: "[IPv6:2001:db8::1]", ip: true},
		{in: "[2001:db8::1]", want: "[IPv6:2001:db8::1]", ip: true},
		{in: "[IPv6:::ffff:192.0.2.7]", want: "[192.0.2.7]", ip: true},
		{in: "[IPv6:::1]", want: "[IPv6:::1]", ip: true},

		{in: "", errPart: "empty"},
		{in: " ", errPart: "spaces"},
		{in: "mail example.org", errPart: "spaces"},
		{in: " mail.example.org", errPart: "spaces"},
		{in: "mail.example.org\n", errPart: "spaces"},
		{in: "[300.1.2.3]", errPart: "not an IPv4 address"},
		{in: "300.1.2.3", errPart: "neither a valid IPv4"},
		{in: "1.2.3", errPart: "neither a valid IPv4"},
		{in: "192.0.2.7.", errPart: "neither a valid IPv4"},
		{in: "[192.0.2.07]", errPart: "not an IPv4 address"},
		{in: "2001:db8::1", errPart: "in brackets: [IPv6:2001:db8::1]"},
		{in: "::1", errPart: "in brackets"},
		{in: "[IPv6:2001:db8::g]", errPart: "not an IPv6 address"},
		{in: "[IPv6:192.0.2.7]", errPart: "not an IPv6 address"},
		{in: "[IPv6:fe80::1%eth0]", errPart: "zone"},
		{in: "[192.0.2.7", errPart: "must end with ']'"},
		{in: "192.0.2.7]", errPart: "must start with '['"},
		{in: "[]", errPart: "empty"},
		{in: "[x-foo:bar]", errPart: "tag \"x-foo\" is not supported"},
		{in: "mail.example.org:993", errPart: "port field"},
		{in: "imaps://mail.example.org", errPart: "not a URL"},
		{in: "mail..example.org", errPart: "empty part"},
		{in: ".example.org", errPart: "empty part"},
		{in: ".", errPart: "only a dot"},
		{in: "-mail.example.org", errPart: "hyphen"},
		{in: "mail-.example.org", errPart: "hyphen"},
		{in: "mail_1.example.org", errPart: "'_'"},
		{in: "mail.exa$mple.org", errPart: "'$'"},
		{in: "bücher.example", errPart: "xn--"},
		{in: strings.Repeat("a", 64) + ".example", errPart: "longer than 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "org", errPart: "at most 253"},
		{in: "mail%eth0", errPart: "zone"},
		{in: "mail.example.org\x00", errPart: "control"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := oldserver.ParseHost(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseHost(%q) = %v, want an error", tt.in, h)
				}
				var he *oldserver.HostError
				if !errors.As(err, &he) {
					t.Errorf("error %T is not a *HostError", err)
				}
				if !strings.Contains(err.Error(), tt.errPart) {
					t.Errorf("error %q does not mention %q", err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHost(%q): %v", tt.in, err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if h.IsIP() != tt.ip {
				t.Errorf("IsIP() = %v, want %v", h.IsIP(), tt.ip)
			}
			again, err := oldserver.ParseHost(h.String())
			if err != nil || again != h {
				t.Errorf("ParseHost(String()) = %v, %v; want %v", again, err, h)
			}
		})
	}
}

func TestHostDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.org":   "mail.example.org:143",
		"[192.0.2.7]":        "192.0.2.7:143",
		"[IPv6:2001:db8::1]": "[2001:db8::1]:143",
	} {
		if got := oldserver.MustParseHost(in).DialAddr(143); got != want {
			t.Errorf("%s: DialAddr = %q, want %q", in, got, want)
		}
	}
}

func TestHostJSON(t *testing.T) {
	type doc struct {
		Host oldserver.Host `json:"host"`
	}
	b, err := json.Marshal(doc{oldserver.MustParseHost("[IPv6:2001:db8::1]")})
	if err != nil || string(b) != `{"host":"[IPv6:2001:db8::1]"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil || d.Host.String() != "[IPv6:2001:db8::1]" {
		t.Fatalf("Unmarshal = %v, %v", d.Host, err)
	}
	if err := json.Unmarshal([]byte(`{"host":"[300.1.2.3]"}`), &d); err == nil {
		t.Fatal("Unmarshal accepted [300.1.2.3]")
	}
}

func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"mail.example.org", "[192.0.2.7]", "[IPv6:2001:db8::1]", "192.0.2.7",
		"[300.1.2.3]", "", " ", "2001:db8::1", "[x:y]", "a..b", "[IPv6:::ffff:1.2.3.4]", "host:25", "[", "]", "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := oldserver.ParseHost(s)
		if err != nil {
			if !h.IsZero() {
				t.Fatalf("error with a non-zero host %v", h)
			}
			return
		}
		if h.IsZero() {
			t.Fatalf("ParseHost(%q) = zero host without error", s)
		}
		again, err := oldserver.ParseHost(h.String())
		if err != nil || again != h {
			t.Fatalf("ParseHost(%q).String() = %q does not parse back: %v, %v", s, h.String(), again, err)
		}
		_ = h.DialAddr(25)
		_ = h.ServerName()
	})
}
