package dkim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"mailferry/core/dkim"
)

// verifyGo checks every signature of msg with go-msgauth against z and
// returns the selectors that verified.
func verifyGo(t *testing.T, z *zone, msg []byte) []string {
	t.Helper()
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return z.LookupTXT(context.Background(), name) },
	})
	if err != nil {
		t.Fatalf("go-msgauth Verify: %v", err)
	}
	var ok []string
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("go-msgauth: signature of %s does not verify: %v", v.Domain, v.Err)
			continue
		}
		ok = append(ok, v.Domain)
	}
	return ok
}

// signatureTags returns the tags of the message's DKIM-Signature fields.
func signatureTags(t *testing.T, msg []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	unfolded := strings.NewReplacer("\r\n\t", "", "\r\n ", "").Replace(string(head))
	for _, line := range strings.Split(unfolded, "\r\n") {
		name, v, _ := strings.Cut(line, ":")
		if !strings.EqualFold(name, "DKIM-Signature") {
			continue
		}
		m := map[string]string{}
		for _, p := range strings.Split(v, ";") {
			k, val, _ := strings.Cut(p, "=")
			m[strings.TrimSpace(k)] = strings.Join(strings.Fields(val), "")
		}
		out = append(out, m)
	}
	return out
}

func TestSignVerifiesWithGoMsgauth(t *testing.T) {
	k, _ := newKeyring(t)
	msg := []byte(sample)
	signed, err := k.Sign("Example.TEST", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(signed, msg) {
		t.Fatal("the message's own bytes changed")
	}
	added := signed[:len(signed)-len(msg)]
	if n := bytes.Count(added, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d DKIM-Signature fields prepended, want 2:\n%s", n, added)
	}
	tags := signatureTags(t, signed)
	if len(tags) != 2 {
		t.Fatalf("signature tags: %v", tags)
	}
	wantAlgo := []string{"ed25519-sha256", "rsa-sha256"}
	wantSel := []string{"mf202612e", "mf202612r"}
	for i, tg := range tags {
		if tg["a"] != wantAlgo[i] || tg["s"] != wantSel[i] || tg["d"] != "example.test" || tg["c"] != "relaxed/relaxed" {
			t.Errorf("signature %d: a=%s s=%s d=%s c=%s", i, tg["a"], tg["s"], tg["d"], tg["c"])
		}
		h := strings.ToLower(tg["h"])
		if !strings.HasPrefix(h, "from:from:") {
			t.Errorf("signature %d: h=%s: From is not oversigned", i, h)
		}
		for _, f := range []string{"to", "cc", "subject", "date", "message-id", "mime-version", "content-type"} {
			if !strings.Contains(":"+h+":", ":"+f+":") {
				t.Errorf("signature %d: h=%s lacks %s", i, h, f)
			}
		}
		if strings.Contains(h, "x-mailer") {
			t.Errorf("signature %d: h=%s signs X-Mailer", i, h)
		}
	}

	z := newZone()
	recs, err := k.DKIMRecords("example.test")
	if err != nil {
		t.Fatal(err)
	}
	z.publish(recs)
	if got := verifyGo(t, z, signed); len(got) != 2 {
		t.Fatalf("%d signatures verified, want 2", len(got))
	}

	// A From added after signing breaks both signatures (oversigning).
	forged := bytes.Replace(signed, []byte("From: Alice"), []byte("From: mallory@evil.example\r\nFrom: Alice"), 1)
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(forged), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return z.LookupTXT(context.Background(), name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Err == nil {
			t.Error("a signature still verifies after a second From was added")
		}
	}
}

func TestSignFirstUseMakesKeys(t *testing.T) {
	k, _ := newKeyring(t)
	gens, err := k.Generations("example.test")
	if err != nil || len(gens) != 0 {
		t.Fatalf("before first use: %v, %v", gens, err)
	}
	if _, err := k.Sign("example.test", []byte(sample)); err != nil {
		t.Fatal(err)
	}
	gens, err = k.Generations("example.test")
	if err != nil || len(gens) != 1 || gens[0].State != dkim.Active || gens[0].Name != "mf202612" {
		t.Fatalf("after first use: %+v, %v", gens, err)
	}
	// Signing again uses the same keys.
	a, _ := k.Sign("example.test", []byte(sample))
	b, _ := k.Sign("example.test", []byte(sample))
	if sa, sb := signatureTags(t, a), signatureTags(t, b); sa[0]["s"] != sb[0]["s"] {
		t.Errorf("selectors differ: %s, %s", sa[0]["s"], sb[0]["s"])
	}
}

func TestSignRefuses(t *testing.T) {
	k, _ := newKeyring(t)
	for _, tc := range []struct {
		name, domain, msg string
		want              error
	}{
		{"no From", "example.test", "Subject: x\r\n\r\nbody\r\n", dkim.ErrNoFrom},
		{"empty message", "example.test", "", dkim.ErrNoFrom},
		{"path in domain", "../../etc", sample, dkim.ErrInvalid},
		{"empty domain", "", sample, dkim.ErrInvalid},
		{"slash", "a/b.example", sample, dkim.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.Sign(tc.domain, []byte(tc.msg))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Sign: %v, want %v", err, tc.want)
			}
		})
	}
}

// debianPython is Debian's Python, which sees Debian's python3-dkim (a
// python3 first on PATH may be another one).
const debianPython = "/usr/bin/python3"

// haveDkimpy tells, once per test binary, whether dkimpy and PyNaCl (for
// Ed25519) can be imported.
var haveDkimpy = sync.OnceValue(func() error {
	return exec.Command(debianPython, "-c", "import dkim, nacl").Run()
})

// dkimpy runs testdata/dkimpy_verify.py with Debian's python3-dkim on msg
// with the zone's records, or skips when it is not installed (fails when
// MAILFERRY_REQUIRE_OLDSERVER=1, which make test sets after installing the
// test fixtures, dkimpy among them).
func dkimpy(t *testing.T, recs []dkim.Record, msg []byte) string {
	t.Helper()
	if err := haveDkimpy(); err != nil {
		if os.Getenv("MAILFERRY_REQUIRE_OLDSERVER") == "1" {
			t.Fatalf("dkimpy is required: %s -c 'import dkim, nacl': %v (apt-get install python3-dkim python3-nacl)", debianPython, err)
		}
		t.Skipf("dkimpy not installed (apt-get install python3-dkim python3-nacl; make test does): %v", err)
	}
	dir := t.TempDir()
	zoneJSON := map[string]string{}
	for _, r := range recs {
		zoneJSON[r.Name] = r.Value
	}
	zb, _ := json.Marshal(zoneJSON)
	if err := os.WriteFile(filepath.Join(dir, "zone.json"), zb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "msg.eml"), msg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(debianPython, "testdata/dkimpy_verify.py", filepath.Join(dir, "msg.eml"), filepath.Join(dir, "zone.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s\nmessage:\n%s", err, out, msg)
	}
	return string(out)
}

func TestSignVerifiesWithDkimpy(t *testing.T) {
	for _, tc := range []struct{ name, msg string }{
		{"CRLF", sample},
		{"bare LF", strings.ReplaceAll(sample, "\r\n", "\n")},
		{"folded and odd spacing", "From:   Alice\r\n  <alice@example.test>\r\nSubject:\tHello\r\n   world\r\nTo: b@x.example\r\n\r\nbody  text \t\r\n\r\n"},
		{"no body", "From: alice@example.test\r\nSubject: empty\r\n\r\n"},
		{"8bit non-UTF-8", "From: =?iso-8859-1?q?J=F6rg?= <jorg@example.test>\r\nSubject: caf\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9 cr\xe8me\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, _ := newKeyring(t)
			signed, err := k.Sign("example.test", []byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			recs, err := k.DKIMRecords("example.test")
			if err != nil {
				t.Fatal(err)
			}
			// On the wire, every line ends in CRLF (the SMTP client
			// turns bare LFs into CRLF).
			wire := bytes.ReplaceAll(bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
			out := dkimpy(t, recs, wire)
			for _, sel := range []string{"mf202612e pass", "mf202612r pass"} {
				if !strings.Contains(out, sel) {
					t.Errorf("dkimpy says:\n%s\nwant %q", out, sel)
				}
			}
			z := newZone()
			z.publish(recs)
			if got := verifyGo(t, z, wire); len(got) != 2 {
				t.Errorf("go-msgauth verified %d signatures on the wire form, want 2", len(got))
			}
			if got := verifyGo(t, z, signed); len(got) != 2 {
				t.Errorf("go-msgauth verified %d signatures as signed, want 2", len(got))
			}
		})
	}
}

func TestDkimpyDetectsTampering(t *testing.T) {
	k, _ := newKeyring(t)
	signed, err := k.Sign("example.test", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := k.DKIMRecords("example.test")
	tampered := bytes.Replace(signed, []byte("figures  are"), []byte("figures were"), 1)
	if haveDkimpy() != nil {
		dkimpy(t, recs, signed) // skips or fails as it should
	}
	dir := t.TempDir()
	zb, _ := json.Marshal(map[string]string{recs[0].Name: recs[0].Value, recs[1].Name: recs[1].Value})
	os.WriteFile(filepath.Join(dir, "zone.json"), zb, 0o600)
	os.WriteFile(filepath.Join(dir, "msg.eml"), tampered, 0o600)
	out, err := exec.Command(debianPython, "testdata/dkimpy_verify.py", filepath.Join(dir, "msg.eml"), filepath.Join(dir, "zone.json")).CombinedOutput()
	if err == nil || strings.Contains(string(out), "pass") {
		t.Fatalf("dkimpy accepted a changed body:\n%s", out)
	}
}

func TestSignMessageWithoutBodySeparator(t *testing.T) {
	k, _ := newKeyring(t)
	msg := []byte("From: alice@example.test\r\nSubject: all header")
	signed, err := k.Sign("example.test", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(signed, msg) {
		t.Fatal("message bytes changed")
	}
	recs, _ := k.DKIMRecords("example.test")
	// dkimpy reads a message without an empty line as all header.
	out := dkimpy(t, recs, signed)
	if strings.Count(out, "pass") != 2 {
		t.Fatalf("dkimpy:\n%s", out)
	}
}
