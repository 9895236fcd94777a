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
	for _, s := range []string{"a:b,c;d", "((((", `"\`, "<<>>@@", "g: <a (b) @ c>;", strings.Repeat("(", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := parseAddresses(s)
		if len(l) > 2*len(s)+2 {
			t.Fatalf("%d addresses from %d bytes", len(l), len(s))
		}
		matchAddresses(s, "x")
		hasGroup(s)
	})
}
