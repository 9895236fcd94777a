package main_test

import (
	"strings"
	"testing"
)

// domain migrate records the old server's POP3 port and TLS mode (whose
// UIDLs the migration keeps), and refuses a port out of range.
func TestDomainMigratePOP3(t *testing.T) {
	data := t.TempDir()
	out, stderr, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "[192.0.2.7]",
		"--tls", "none", "--pop3-port", "1110", "--pop3-tls", "none")
	if code != 0 || !strings.Contains(out, "POP3 1110 (none)") {
		t.Fatalf("domain migrate --pop3-port: %d %s %s", code, out, stderr)
	}
	out, stderr, code = mf(t, data, "", "domain", "migrate", "example.test", "--show")
	if code != 0 || !strings.Contains(out, `"pop3_port": 1110`) || !strings.Contains(out, `"pop3_tls": "none"`) {
		t.Fatalf("domain migrate --show: %d %s %s", code, out, stderr)
	}
	if _, _, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "[192.0.2.7]", "--pop3-port", "70000"); code == 0 {
		t.Error("--pop3-port 70000 accepted")
	}
	if _, _, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "[192.0.2.7]", "--pop3-port", "110", "--pop3-tls", "ssl"); code == 0 {
		t.Error("--pop3-tls ssl accepted")
	}
}
