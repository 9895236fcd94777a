package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `mailferry domain route` shows and sets a domain's outbound route; the
// smarthost password comes from standard input or a file, never a flag,
// and is never printed.
func TestDomainRouteCLI(t *testing.T) {
	data := t.TempDir()
	if _, stderr, code := mf(t, data, "", "domain", "add", "example.test"); code != 0 {
		t.Fatalf("domain add: %d %s", code, stderr)
	}
	const secret = "Smart-Secret-51"
	pwFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pwFile, []byte("File-Secret-77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  []string
	}{
		{"", []string{"example.test"}, []string{"outbound route default", "direct delivery"}},
		{secret + "\n", []string{"example.test", "--smarthost", "smtp.provider.test:2587", "--user", "relay-user"},
			[]string{"smarthost smtp.provider.test:2587 (TLS starttls), AUTH as relay-user", "leaves by: the smarthost"}},
		{"", []string{"example.test"}, []string{"smarthost smtp.provider.test:2587"}},
		{"", []string{"example.test", "--smarthost", "relay.test", "--tls", "tls", "--user", "u2", "--password-file", pwFile},
			[]string{"relay.test:465 (TLS tls), AUTH as u2"}},
		{"", []string{"example.test", "--smarthost", "relay.corp.test", "--pin", strings.Repeat("AB:", 31) + "AB"},
			[]string{"relay.corp.test:587 (TLS starttls), certificate pinned ab:ab:"}},
		{"", []string{"example.test", "--oldserver"}, []string{"outbound route oldserver", "the old server"}},
		{"", []string{"example.test", "--mx"}, []string{"outbound route mx", "direct delivery"}},
		{"", []string{"example.test", "--default"}, []string{"outbound route default"}},
	} {
		out, stderr, code := mf(t, data, tc.stdin, append([]string{"domain", "route"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("domain route %q: exit %d: %s", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("domain route %q: %q lacks %q", tc.args, out, w)
			}
		}
		if strings.Contains(out+stderr, secret) || strings.Contains(out+stderr, "File-Secret-77") {
			t.Errorf("domain route %q printed the password", tc.args)
		}
	}
	if out, _, _ := mf(t, data, "", "domain", "list"); !strings.Contains(out, "OUTBOUND") || !strings.Contains(out, "mx") {
		t.Errorf("domain list does not show the route:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"example.test", "--mx", "--smarthost", "a.test"}, "choose one"},
		{[]string{"example.test", "--smarthost", "a.test", "--tls", "none", "--user", "u"}, "TLS"},
		{[]string{"example.test", "--smarthost", "a.test", "--tls", "maybe"}, "maybe"},
		{[]string{"example.test", "--smarthost", "a.test:99999"}, "port"},
		{[]string{"example.test", "--tls", "tls"}, "--smarthost"},
		{[]string{"never.test", "--mx"}, "not found"},
		{[]string{"example.test", "--smarthost", "a.test", "--pin", "12:34"}, "64 hex digits"},
		{[]string{"example.test", "--pin", strings.Repeat("ab", 32)}, "--smarthost"},
	} {
		_, stderr, code := mf(t, data, "pw\n", append([]string{"domain", "route"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("domain route %q: exit %d, %q; want 2 mentioning %q", tc.args, code, stderr, tc.msg)
		}
	}
}
