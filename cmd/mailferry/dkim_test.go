package main_test

import (
	"strings"
	"testing"
)

// `domain dkim` prints the records to publish: the domain's two DKIM keys,
// SPF (with the addresses given) and DMARC; rotation makes pending keys
// whose records are listed too.
func TestDomainDKIM(t *testing.T) {
	data := t.TempDir()
	if out, stderr, code := mf(t, data, "", "domain", "add", "example.test"); code != 0 {
		t.Fatalf("domain add: %s %s", out, stderr)
	}
	out, stderr, code := mf(t, data, "", "domain", "dkim", "example.test", "--spf-ip", "192.0.2.25")
	if code != 0 {
		t.Fatalf("domain dkim: %d %s", code, stderr)
	}
	for _, want := range []string{`._domainkey.example.test TXT "v=DKIM1; k=ed25519; p=`, `._domainkey.example.test TXT "v=DKIM1; k=rsa; p=`,
		`example.test TXT "v=spf1 mx ip4:192.0.2.25 -all"`, `_dmarc.example.test TXT "v=DMARC1; p=none`} {
		if !strings.Contains(out, want) {
			t.Errorf("domain dkim output lacks %q:\n%s", want, out)
		}
	}
	out, stderr, code = mf(t, data, "", "domain", "dkim", "example.test", "--rotate")
	if code != 0 || strings.Count(out, "v=DKIM1") != 4 || !strings.Contains(out, "pending") {
		t.Fatalf("after --rotate (%d, %s): want four keys, two pending:\n%s", code, stderr, out)
	}
	if _, stderr, code := mf(t, data, "", "domain", "dkim", "nowhere.test"); code == 0 {
		t.Fatalf("dkim of an unknown domain succeeded: %s", stderr)
	}
}
