package imapfront

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestParseAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []imap.Address
	}{
		{"undisclosed-recipients:;", []imap.Address{{Mailbox: "undisclosed-recipients"}, {}}},
		{`"The Team": a@x.test, B <b@y.test>; c@z.test`, []imap.Address{
			{Mailbox: "The Team"}, {Mailbox: "a", Host: "x.test"}, {Name: "B", Mailbox: "b", Host: "y.test"}, {},
			{Mailbox: "c", Host: "z.test"}}},
		{"<user (c)@ (c) domain.org>", []imap.Address{{Mailbox: "user", Host: "domain.org"}}},
		{"a@b.test (Real Name)", []imap.Address{{Name: "Real Name", Mailbox: "a", Host: "b.test"}}},
		{`"x, y" <q@r.test>, "p:q" <s@t.test>`, []imap.Address{{Name: "x, y", Mailbox: "q", Host: "r.test"}, {Name: "p:q", Mailbox: "s", Host: "t.test"}}},
		{"not an address, ok@fine.test", []imap.Address{{Mailbox: "ok", Host: "fine.test"}}},
		{"", nil},
	} {
		if got := parseAddresses(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseAddresses(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// FuzzAddresses: hostile address fields never panic, and give at most a
// few entries per input byte.
func FuzzAddresses(f *testing.F) {
	for _, s := range []string{"a:b,c;d", "((((", `"\`, "<<>>@@", "g: <a (b) @ c>;", strings.Repeat("(", 1000), "<@a,@b:u@h>", "<@a\x00:u@h>", "x <@[1]:u@h>, <@:v@w>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := parseAddresses(s)
		if len(l) > 2*len(s)+2 {
			t.Fatalf("%d addresses from %d bytes", len(l), len(s))
		}
		for _, a := range l {
			// review1: a route is one, never the sender's bytes as written.
			if a.Route != "" && validRoute(a.Route) != a.Route {
				t.Fatalf("route %q from %q", a.Route, s)
			}
		}
		matchAddresses(s, "x")
		hasGroup(s)
	})
}

// TestRouteVetted (review1): a source route is given as ENVELOPE's
// addr-adl only when it is one; a NUL, another control character, bytes
// that are not UTF-8, quotes or an empty hop leave the address without
// its route (they went to the client as written), also when read from a
// summary cache entry written before.
func TestRouteVetted(t *testing.T) {
	for in, route := range map[string]string{
		"<@a.example:u@h>":             "@a.example",
		"<@a.example, @b.example:u@h>": "@a.example,@b.example",
		"<@[192.0.2.1]:u@h>":           "@[192.0.2.1]",
		"<@bücher.example:u@h>":        "@bücher.example",
		"<@a\x00b:u@h>":                "",
		"<@a\x01b:u@h>":                "",
		"<@a\x7fb:u@h>":                "",
		"<@\xff\xfe:u@h>":              "",
		"<@a\"b\\\\c:u@h>":             "",
		"<@:u@h>":                      "",
		"<@,:u@h>":                     "",
		"<@a,b:u@h>":                   "",
		"<@[1.2\x00]:u@h>":             "",
		"<@a" + strings.Repeat("b", 2000) + ":u@h>": "",
	} {
		got := parseAddresses(in)
		if len(got) != 1 || got[0].Mailbox != "u" || got[0].Host != "h" || got[0].Route != route {
			t.Errorf("parseAddresses(%q) = %+v, want u@h with route %q", in, got, route)
		}
	}
	env := &imap.Envelope{From: []imap.Address{{Route: "@a\x00b", Mailbox: "u", Host: "h"}, {Route: "@ok.example", Mailbox: "v", Host: "h"}}}
	got, err := decodeEnvelope(encodeEnvelope(env))
	if err != nil {
		t.Fatal(err)
	}
	if got.From[0].Route != "" || got.From[1].Route != "@ok.example" {
		t.Errorf("routes read from the cache: %+v", got.From)
	}
}
