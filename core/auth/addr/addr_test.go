package addr_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mailferry/core/auth/addr"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"carol@example.test", "carol@example.test"},
		{"CAROL@example.test", "carol@example.test"},
		{"Carol@EXAMPLE.TEST", "carol@example.test"},
		{"carol@example.test.", "carol@example.test"},
		{"carol@bücher.example", "carol@xn--bcher-kva.example"},
		{"carol@XN--BCHER-KVA.example", "carol@xn--bcher-kva.example"},
		{"first.last+tag@example.test", "first.last+tag@example.test"},
		{"ünïcode@example.test", "ünïcode@example.test"},
	} {
		got, err := addr.Canonical(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCanonicalRefuses(t *testing.T) {
	for _, in := range []string{
		"", "carol", "@example.test", "carol@", "x@a.test@b.test", "carol@@example.test",
		"victim%foreign.example@example.test", "foreign.example!victim@example.test",
		`"victim@foreign.example"@example.test`, "@relay.example:victim@example.test",
		"carol*master@example.test", ".carol@example.test", "carol.@example.test", "ca..rol@example.test",
		"carol @example.test", " carol@example.test", "carol@example.test ", "carol\r\n@example.test",
		"carol@[192.0.2.1]", "carol@192.0.2.1", "carol@exa_mple.test", "carol@-example.test",
		"carol@example..test", "carol@example.test..", "carol\x00@example.test",
		strings.Repeat("a", 65) + "@example.test",
		"carol@" + strings.Repeat("a.", 130) + "test",
		strings.Repeat("x", 50000) + "@example.test",
		"car\xffol@example.test",
	} {
		got, err := addr.Canonical(in)
		if err == nil {
			t.Errorf("Canonical(%q) = %q, want an error", in, got)
			continue
		}
		if !errors.Is(err, addr.ErrInvalid) {
			t.Errorf("Canonical(%q): %v does not wrap ErrInvalid", in, err)
		}
		if len(err.Error()) > 300 {
			t.Errorf("Canonical(%.20q…): error of %d bytes", in, len(err.Error()))
		}
	}
}

func TestDomainIDNA(t *testing.T) {
	a, err1 := addr.Domain("bücher.example")
	b, err2 := addr.Domain("xn--bcher-kva.example.")
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("bücher.example = %q (%v), xn--bcher-kva.example. = %q (%v): want one domain", a, err1, b, err2)
	}
	if u := addr.Unicode(a); u != "bücher.example" {
		t.Errorf("Unicode(%q) = %q", a, u)
	}
}

// FuzzCanonical: Canonical never panics, its result is canonical (a fixed
// point), has one @, holds no routing characters and is within the limits.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"carol@example.test", "CAROL@Example.Test.", "a%b@c.test", `"a@b"@c.test`,
		"a!b@c.test", "x@a.test@b.test", "ü@bücher.example", "a@xn--bcher-kva.example", "a*b@c.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := addr.Canonical(in)
		if err != nil {
			if !errors.Is(err, addr.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if c2, err := addr.Canonical(c); err != nil || c2 != c {
			t.Fatalf("Canonical(%q) = %q, but Canonical of that = %q, %v", in, c, c2, err)
		}
		if strings.Count(c, "@") != 1 || strings.ContainsAny(c, "%!\"*[] \t\r\n\x00:") || len(c) > 254 || !utf8.ValidString(c) {
			t.Fatalf("Canonical(%q) = %q: not a plain address", in, c)
		}
		if strings.ToLower(c) != c {
			t.Fatalf("Canonical(%q) = %q: not lower case", in, c)
		}
	})
}
