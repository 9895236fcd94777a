package dkim_test

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"mailferry/core/dkim"
)

// results parses an Authentication-Results field back into method=value.
func results(t *testing.T, field string) map[string][]string {
	t.Helper()
	if !strings.HasPrefix(field, "Authentication-Results: ") || !strings.HasSuffix(field, "\r\n") {
		t.Fatalf("not a header field: %q", field)
	}
	checkOneField(t, field)
	v := strings.TrimPrefix(strings.TrimSuffix(field, "\r\n"), "Authentication-Results: ")
	v = strings.ReplaceAll(v, "\r\n\t", " ")
	id, res, err := authres.Parse(v)
	if err != nil {
		t.Fatalf("authres.Parse(%q): %v", v, err)
	}
	if id != "mx.mailferry.test" {
		t.Errorf("authserv-id %q", id)
	}
	out := map[string][]string{}
	for _, r := range res {
		switch r := r.(type) {
		case *authres.SPFResult:
			out["spf"] = append(out["spf"], string(r.Value))
		case *authres.DKIMResult:
			out["dkim"] = append(out["dkim"], string(r.Value))
		case *authres.DMARCResult:
			out["dmarc"] = append(out["dmarc"], string(r.Value))
		}
	}
	return out
}

// checkOneField fails unless field is one header field: every line end a
// CRLF followed by a tab, but the last.
func checkOneField(t *testing.T, field string) {
	t.Helper()
	body := strings.TrimSuffix(field, "\r\n")
	if strings.Contains(strings.ReplaceAll(body, "\r\n\t", ""), "\r") || strings.Contains(strings.ReplaceAll(body, "\r\n\t", ""), "\n") {
		t.Fatalf("stray line end in %q", field)
	}
	for _, line := range strings.Split(body, "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
}

func newVerifier(t *testing.T, z *zone) *dkim.Verifier {
	t.Helper()
	v, err := dkim.NewVerifier(dkim.VerifierOptions{Resolver: z, Hostname: "mx.mailferry.test"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuthenticationResults(t *testing.T) {
	k, _ := newKeyring(t)
	signed, err := k.Sign("example.test", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := k.DKIMRecords("example.test")
	sub := bytes.Replace([]byte(sample), []byte("alice@example.test"), []byte("alice@news.example.test"), 1)
	signedSub, err := k.Sign("example.test", sub)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte("figures  are"), []byte("figures were"), 1)
	server := netip.MustParseAddr("192.0.2.10")
	other := netip.MustParseAddr("203.0.113.9")
	base := func() *zone {
		z := newZone()
		z.publish(recs)
		z.setTXT("example.test", "v=spf1 ip4:192.0.2.10 ~all")
		z.setTXT("_dmarc.example.test", "v=DMARC1; p=reject")
		return z
	}
	for _, tc := range []struct {
		name  string
		zone  func() *zone
		s     dkim.Session
		msg   []byte
		spf   string
		dkim  []string
		dmarc string
	}{
		{"all pass", base, dkim.Session{ClientIP: server, HELO: "mail.example.test", MailFrom: "alice@example.test"}, signed,
			"pass", []string{"pass", "pass"}, "pass"},
		{"forwarded: SPF fails, DKIM carries DMARC", base, dkim.Session{ClientIP: other, HELO: "fwd.example", MailFrom: "alice@example.test"}, signed,
			"softfail", []string{"pass", "pass"}, "pass"},
		{"changed in transit from elsewhere", base, dkim.Session{ClientIP: other, HELO: "fwd.example", MailFrom: "alice@example.test"}, tampered,
			"softfail", []string{"fail", "fail"}, "fail"},
		{"unsigned from the right host", base, dkim.Session{ClientIP: server, HELO: "mail.example.test", MailFrom: "bounce@example.test"}, []byte(sample),
			"pass", []string{"none"}, "pass"},
		{"SPF passes for another domain: not aligned", func() *zone {
			z := base()
			z.setTXT("bulk.example", "v=spf1 ip4:203.0.113.0/24 -all")
			return z
		}, dkim.Session{ClientIP: other, HELO: "bulk.example", MailFrom: "x@bulk.example"}, []byte(sample),
			"pass", []string{"none"}, "fail"},
		{"relaxed alignment: From a subdomain, d= the parent", base, dkim.Session{ClientIP: other, HELO: "h.example", MailFrom: ""}, signedSub,
			"none", []string{"pass", "pass"}, "pass"},
		{"strict alignment", func() *zone {
			z := base()
			z.setTXT("_dmarc.example.test", "v=DMARC1; p=quarantine; adkim=s")
			return z
		}, dkim.Session{ClientIP: other, HELO: "h.example", MailFrom: ""}, signedSub,
			"none", []string{"pass", "pass"}, "fail"},
		{"no records at all", newZone, dkim.Session{ClientIP: other, HELO: "h.example", MailFrom: "a@example.test"}, signed,
			"none", []string{"permerror", "permerror"}, "none"},
		{"DNS down", func() *zone {
			z := base()
			for _, n := range []string{"example.test", "_dmarc.example.test", recs[0].Name, recs[1].Name} {
				z.fail[n] = true
			}
			return z
		}, dkim.Session{ClientIP: server, HELO: "mail.example.test", MailFrom: "alice@example.test"}, signed,
			"temperror", []string{"temperror", "temperror"}, "temperror"},
		{"no client address", base, dkim.Session{HELO: "x", MailFrom: "alice@example.test"}, signed,
			"permerror", []string{"pass", "pass"}, "pass"},
		{"two From fields", base, dkim.Session{ClientIP: server, HELO: "mail.example.test", MailFrom: "alice@example.test"},
			[]byte("From: a@example.test\r\nFrom: b@example.test\r\n\r\nx\r\n"), "pass", []string{"none"}, "permerror"},
		// The header scan keeps 1,000 fields: a second From past them was
		// not seen, and DMARC passed for the first while a reader may be
		// shown the second.
		{"a second From past 1,000 fields", base, dkim.Session{ClientIP: server, HELO: "mail.example.test", MailFrom: "alice@example.test"},
			[]byte("From: a@example.test\r\n" + strings.Repeat("X-Pad: p\r\n", 1000) + "From: ceo@bank.example\r\n\r\nx\r\n"), "pass", []string{"none"}, "permerror"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.zone())
			field := v.AuthenticationResults(t.Context(), tc.s, tc.msg)
			got := results(t, field)
			if strings.Join(got["spf"], ",") != tc.spf || strings.Join(got["dkim"], ",") != strings.Join(tc.dkim, ",") || strings.Join(got["dmarc"], ",") != tc.dmarc {
				t.Errorf("got spf=%v dkim=%v dmarc=%v, want spf=%s dkim=%v dmarc=%s\n%s", got["spf"], got["dkim"], got["dmarc"], tc.spf, tc.dkim, tc.dmarc, field)
			}
		})
	}
}

func TestAuthenticationResultsNamesIdentities(t *testing.T) {
	k, _ := newKeyring(t)
	signed, _ := k.Sign("example.test", []byte(sample))
	recs, _ := k.DKIMRecords("example.test")
	z := newZone()
	z.publish(recs)
	v := newVerifier(t, z)
	field := v.AuthenticationResults(t.Context(), dkim.Session{ClientIP: netip.MustParseAddr("2001:db8::1"), HELO: "mail.example.test", MailFrom: "alice@example.test"}, signed)
	for _, want := range []string{"smtp.mailfrom=alice@example.test", "header.d=example.test", "header.from=example.test"} {
		if !strings.Contains(field, want) {
			t.Errorf("%q lacks %s", field, want)
		}
	}
	field = v.AuthenticationResults(t.Context(), dkim.Session{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: "mail.example.test"}, signed)
	if !strings.Contains(field, "smtp.helo=mail.example.test") {
		t.Errorf("null sender: %q lacks smtp.helo", field)
	}
}

func TestNewVerifierNeedsResolverAndName(t *testing.T) {
	if _, err := dkim.NewVerifier(dkim.VerifierOptions{Hostname: "mx"}); err == nil {
		t.Error("no resolver accepted")
	}
	if _, err := dkim.NewVerifier(dkim.VerifierOptions{Resolver: newZone(), Hostname: "\r\n"}); err == nil {
		t.Error("empty host name accepted")
	}
}

// TestHostileInput: nothing a sender writes makes signing or verification
// panic, hang or put a line break into the header field.
func TestHostileInput(t *testing.T) {
	big := strings.Repeat("a", 10<<20)
	folded := strings.Repeat("X-Fold: "+strings.Repeat("b", 70)+"\r\n "+strings.Repeat("c", 70)+"\r\n", (10<<20)/150)
	manyCont := "From: a@example.test\r\nX-Long: x\r\n" + strings.Repeat(" cont\r\n", (10<<20)/7) + "\r\nbody\r\n"
	sig := "DKIM-Signature: v=1; a=rsa-sha256; d=evil\r\n.example; s=x\r\n\r\n; h=from; bh=; b=\r\n"
	for _, tc := range []struct{ name, msg string }{
		{"empty", ""},
		{"no header", "\r\nbody only\r\n"},
		{"no colon anywhere", "just some text\r\nand more\r\n"},
		{"10 MB header field", "From: a@example.test\r\nX-Big: " + big + "\r\n\r\nbody\r\n"},
		{"10 MB of folded fields", "From: a@example.test\r\n" + folded + "\r\nbody\r\n"},
		{"10 MB of continuation lines", manyCont},
		{"10 MB From", "From: " + big + "@example.test\r\n\r\nx\r\n"},
		{"bare LF", "From: a@example.test\nSubject: x\n\nbody\n"},
		{"bare CR", "From: a@example.test\rSubject: x\r\rbody\r"},
		{"non-UTF-8", "From: \xff\xfe <a@exa\xffmple.test>\r\nSubject: \xc3\x28\r\n\r\n\xff\xfe\xfd\r\n"},
		{"NUL bytes", "From: a@example.test\x00\r\nSub\x00ject: x\r\n\r\n\x00\r\n"},
		{"continuation first", " leading\r\nFrom: a@example.test\r\n\r\nx"},
		{"broken signature", sig + "From: a@example.test\r\n\r\nx\r\n"},
		{"many signatures", strings.Repeat("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=s; h=from; bh=AA==; b=AA==\r\n", 50) + "From: a@example.test\r\n\r\nx\r\n"},
		{"injecting From", "From: a@example.test\r\n\tb@evil.example\r\n\r\nx\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, _ := newKeyring(t)
			start := time.Now()
			signed, err := k.Sign("example.test", []byte(tc.msg))
			if err == nil && !bytes.HasSuffix(signed, []byte(tc.msg)) {
				t.Error("Sign changed the message")
			}
			z := newZone()
			z.setTXT("example.test", "v=spf1 -all")
			z.setTXT("_dmarc.example.test", "v=DMARC1; p=reject")
			v := newVerifier(t, z)
			s := dkim.Session{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: "evil\r\nX-Injected: 1", MailFrom: "a@example.test\r\nX-Injected: 2"}
			field := v.AuthenticationResults(context.Background(), s, []byte(tc.msg))
			checkOneField(t, field) // the CR LF in HELO and MAIL FROM are gone
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
