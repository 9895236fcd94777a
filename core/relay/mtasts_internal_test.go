package relay

import (
	"strings"
	"testing"
)

func TestParseSTSPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		mode     string
		err      bool
	}{
		{"enforce", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n", stsEnforce, false},
		{"lf and spaces", "version:STSv1\nmode:  testing \nmx: a.test\nmax_age: 1\n", stsTesting, false},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 1\n", stsNone, false},
		{"wrong version", "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "", true},
		{"bad mode", "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", "", true},
		{"no mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", "", true},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a\n", "", true},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n", "", true},
		{"garbage", "<html>hello</html>", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseSTSPolicy([]byte(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("parsed %+v", p)
				}
				return
			}
			if err != nil || p.mode != tc.mode {
				t.Fatalf("%+v, %v", p, err)
			}
		})
	}
}

func TestSTSMatches(t *testing.T) {
	p := &stsPolicy{mx: []string{"mail.example.com", "*.Example.NET"}}
	for host, want := range map[string]bool{
		"mail.example.com":   true,
		"MAIL.example.com.":  true,
		"a.example.net":      true,
		"a.b.example.net":    false, // a wildcard is one label
		"example.net":        false,
		"other.example.com":  false,
		"mail.example.com.x": false,
	} {
		if got := p.matches(host); got != want {
			t.Errorf("matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func FuzzParseSTSPolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.a.test\nmax_age: 99999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSTSPolicy(b)
		if err != nil {
			return
		}
		if p.mode != stsEnforce && p.mode != stsTesting && p.mode != stsNone {
			t.Fatalf("mode %q accepted", p.mode)
		}
		if p.mode != stsNone && len(p.mx) == 0 {
			t.Fatal("a policy without mx accepted")
		}
		for _, m := range p.mx {
			_ = p.matches(strings.TrimPrefix(m, "*."))
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	f.Add(`{"route":"smarthost","host":"relay.test","port":587,"tls":"starttls","username":"u","password":"p"}`)
	f.Add(`{"route":"mx"}`)
	f.Fuzz(func(t *testing.T, js string) {
		rt, err := ParseRoute(js)
		if err != nil {
			return
		}
		if rt.Password != "" && strings.Contains(rt.String(), string(rt.Password)) && !strings.Contains(rt.Host+rt.Username+string(rt.TLS), string(rt.Password)) {
			t.Fatalf("String shows the password: %q", rt.String())
		}
	})
}
