package relay

import (
	"errors"
	"testing"
)

func TestRcptAddress(t *testing.T) {
	for _, tc := range []struct {
		in     string
		strict bool
		want   string // "" = refused
	}{
		{"bob@example.test", true, "bob@example.test"},
		{"Bob@EXAMPLE.Test.", true, "bob@example.test"},
		{"bob@bücher.example", true, "bob@xn--bcher-kva.example"},
		{"first.last+tag@example.test", true, "first.last+tag@example.test"},
		// What go-smtp makes of the attacker's forms.
		{"victim%foreign.example@example.test", true, ""},
		{"victim@foreign.example@example.test", true, ""}, // also `"victim@foreign.example"@example.test`
		{"foreign.example!victim@example.test", true, ""},
		{"@relay.example:victim@example.test", true, ""},
		{"victim foreign@example.test", true, ""}, // `"victim foreign"@example.test`
		{"bob@[192.0.2.1]", true, ""},
		{"bob@example.test\r\n", true, ""},
		// An authenticated or trusted sender may relay anywhere: the local
		// part is kept, quoted where RFC 5321 needs it.
		{"Bob@EXAMPLE.Test.", false, "Bob@example.test"},
		{"user%host@other.test", false, "user%host@other.test"},
		{"victim@foreign.example@example.test", false, `"victim@foreign.example"@example.test`},
		{"john smith@other.test", false, `"john smith"@other.test`},
		{`a"b\c@other.test`, false, `"a\"b\\c"@other.test`},
		{".dot@other.test", false, `".dot"@other.test`},
		{"ctl\x01@other.test", false, ""},
		{"@other.test", false, ""},
		{"nodomain", false, ""},
		{"bob@-bad.test", false, ""},
	} {
		got, dom, err := rcptAddress(tc.in, tc.strict)
		if tc.want == "" {
			if err == nil || !errors.Is(err, errRcptForm) {
				t.Errorf("rcptAddress(%q, %v) = %q, %v; want an errRcptForm", tc.in, tc.strict, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || dom != rcptDomain(tc.want) {
			t.Errorf("rcptAddress(%q, %v) = %q, %q, %v; want %q", tc.in, tc.strict, got, dom, err, tc.want)
		}
	}
}
