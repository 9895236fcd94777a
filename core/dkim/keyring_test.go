package dkim_test

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/dkim"
)

func TestKeyFilesModes(t *testing.T) {
	k, _ := newKeyring(t)
	if err := os.MkdirAll(k.Dir(), 0o755); err != nil { // made loose by hand
		t.Fatal(err)
	}
	if _, err := k.Active("example.test"); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		k.Dir():                                0o700 | os.ModeDir,
		filepath.Join(k.Dir(), "example.test"): 0o700 | os.ModeDir,
		filepath.Join(k.Dir(), "example.test", "state.json"):    0o600,
		filepath.Join(k.Dir(), "example.test", "mf202612e.pem"): 0o600,
		filepath.Join(k.Dir(), "example.test", "mf202612r.pem"): 0o600,
	}
	for name, mode := range want {
		fi, err := os.Stat(name)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(k.Dir(), "example.test"))
	if len(entries) != 3 {
		t.Errorf("%d files in the domain's folder, want 3 (no temporary file left)", len(entries))
	}
	// The key files are PKCS #8 PEM of the right types.
	for sel, typ := range map[string]string{"mf202612e": "ed25519.PrivateKey", "mf202612r": "*rsa.PrivateKey"} {
		b, _ := os.ReadFile(filepath.Join(k.Dir(), "example.test", sel+".pem"))
		if !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----") {
			t.Fatalf("%s: not PKCS #8 PEM", sel)
		}
		gens, _ := k.Generations("example.test")
		for _, key := range gens[0].Keys {
			if key.Selector != sel {
				continue
			}
			switch pub := key.Public().(type) {
			case ed25519.PublicKey:
				if typ != "ed25519.PrivateKey" {
					t.Errorf("%s is Ed25519", sel)
				}
			case *rsa.PublicKey:
				if typ != "*rsa.PrivateKey" || pub.N.BitLen() != 2048 {
					t.Errorf("%s: RSA of %d bits", sel, pub.N.BitLen())
				}
			}
		}
	}
}

func TestKeyringReopened(t *testing.T) {
	k, c := newKeyring(t)
	g1, err := k.Active("example.test")
	if err != nil {
		t.Fatal(err)
	}
	k2 := dkim.NewKeyring(k.Dir(), &dkim.Options{Now: c.Now})
	g2, err := k2.Active("EXAMPLE.test.")
	if err != nil {
		t.Fatal(err)
	}
	if g1.Keys[0].TXT() != g2.Keys[0].TXT() || g1.Keys[1].TXT() != g2.Keys[1].TXT() {
		t.Fatal("a second keyring on the same folder made other keys")
	}
}

func TestRotation(t *testing.T) {
	k, c := newKeyring(t)
	const d = "example.test"
	if _, err := k.Activate(d); !errors.Is(err, dkim.ErrNoPending) {
		t.Fatalf("Activate with nothing pending: %v", err)
	}
	first, err := k.Active(d)
	if err != nil {
		t.Fatal(err)
	}

	c.Add(30 * 24 * time.Hour) // January 2027
	pending, err := k.Rotate(d)
	if err != nil {
		t.Fatal(err)
	}
	if pending.Name != "mf202701" || pending.State != dkim.Pending ||
		pending.Keys[0].Selector != "mf202701e" || pending.Keys[1].Selector != "mf202701r" {
		t.Fatalf("pending: %s %s %s %s", pending.Name, pending.State, pending.Keys[0].Selector, pending.Keys[1].Selector)
	}
	again, err := k.Rotate(d)
	if err != nil || again.Name != pending.Name {
		t.Fatalf("a second Rotate made %v (%v), want the pending %s again", again.Name, err, pending.Name)
	}
	// Mail is still signed with the active keys while the new ones wait
	// for DNS.
	signed, err := k.Sign(d, []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if tg := signatureTags(t, signed); tg[0]["s"] != "mf202612e" || tg[1]["s"] != "mf202612r" {
		t.Fatalf("signed with %s/%s while rotation is pending", tg[0]["s"], tg[1]["s"])
	}
	recs, err := k.DKIMRecords(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name+" "+r.Purpose)
	}
	want := []string{
		"mf202701e._domainkey.example.test DKIM Ed25519 key (pending)",
		"mf202701r._domainkey.example.test DKIM RSA-2048 key (pending)",
		"mf202612e._domainkey.example.test DKIM Ed25519 key (active)",
		"mf202612r._domainkey.example.test DKIM RSA-2048 key (active)",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}

	c.Add(24 * time.Hour)
	active, err := k.Activate(d)
	if err != nil {
		t.Fatal(err)
	}
	if active.Name != "mf202701" || active.State != dkim.Active {
		t.Fatalf("after Activate: %s %s", active.Name, active.State)
	}
	signed, _ = k.Sign(d, []byte(sample))
	if tg := signatureTags(t, signed); tg[0]["s"] != "mf202701e" || tg[1]["s"] != "mf202701r" {
		t.Fatalf("signed with %s/%s after activation", tg[0]["s"], tg[1]["s"])
	}
	gens, _ := k.Generations(d)
	if len(gens) != 2 || gens[1].Name != first.Name || gens[1].State != dkim.Retired {
		t.Fatalf("generations after activation: %+v", gens)
	}
	wantKeep := c.Now().Add(7 * 24 * time.Hour)
	if !gens[1].KeepUntil.Equal(wantKeep) {
		t.Errorf("retired kept until %v, want %v", gens[1].KeepUntil, wantKeep)
	}
	recs, _ = k.DKIMRecords(d)
	if len(recs) != 4 || !strings.Contains(recs[2].Note, "keep until "+wantKeep.Format("2006-01-02")) {
		t.Fatalf("retired record: %+v", recs)
	}
	// The old keys still verify mail signed before the switch.
	z := newZone()
	z.publish(recs)
	verifyGo(t, z, signed)

	// A second rotation in the same month gets a numbered name.
	p2, err := k.Rotate(d)
	if err != nil || p2.Name != "mf202701-2" || p2.Keys[0].Selector != "mf202701-2e" {
		t.Fatalf("second rotation in a month: %v, %v", p2, err)
	}

	// Past its keeping time the retired generation is no longer listed, and
	// its files go at the next change.
	c.Add(8 * 24 * time.Hour)
	gens, _ = k.Generations(d)
	for _, g := range gens {
		if g.Name == first.Name {
			t.Fatal("expired generation still listed")
		}
	}
	if _, err := k.Activate(d); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []string{"mf202612e", "mf202612r"} {
		if _, err := os.Stat(filepath.Join(k.Dir(), d, sel+".pem")); !os.IsNotExist(err) {
			t.Errorf("%s.pem still there after expiry: %v", sel, err)
		}
	}
	gens, _ = k.Generations(d)
	if len(gens) != 2 || gens[0].Name != "mf202701-2" || gens[0].State != dkim.Active || gens[1].Name != "mf202701" {
		t.Fatalf("after the second activation: %+v", gens)
	}
}

func TestRecordsText(t *testing.T) {
	k, _ := newKeyring(t)
	recs, err := k.Records("example.test", dkim.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	g, _ := k.Active("example.test")
	ed := g.Keys[0].Public().(ed25519.PublicKey)
	wantEd := `mf202612e._domainkey.example.test TXT "v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(ed) + `"`
	if recs[0].String() != wantEd {
		t.Errorf("Ed25519 record:\n%s\nwant\n%s", recs[0], wantEd)
	}
	der, _ := x509.MarshalPKIXPublicKey(g.Keys[1].Public())
	wantRSA := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	if recs[1].Value != wantRSA || recs[1].Name != "mf202612r._domainkey.example.test" {
		t.Errorf("RSA record: %s", recs[1])
	}
	// A zone file line splits the RSA key in strings of at most 255 bytes.
	zl := recs[1].Zone()
	if !strings.HasPrefix(zl, "mf202612r._domainkey.example.test. IN TXT \"v=DKIM1; k=rsa; p=") {
		t.Errorf("zone line: %s", zl)
	}
	parts := strings.Split(strings.TrimSuffix(strings.SplitN(zl, ` TXT "`, 2)[1], `"`), `" "`)
	if len(parts) < 2 || strings.Join(parts, "") != wantRSA {
		t.Errorf("zone line strings do not join to the record: %q", parts)
	}
	for _, p := range parts {
		if len(p) > 255 {
			t.Errorf("a string of %d bytes", len(p))
		}
	}
	if recs[2].String() != `example.test TXT "v=spf1 mx -all"` {
		t.Errorf("SPF: %s", recs[2])
	}
	if recs[3].String() != `_dmarc.example.test TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.test"` {
		t.Errorf("DMARC: %s", recs[3])
	}
}

func TestSPFRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    dkim.SPFPolicy
		want string
		err  bool
	}{
		{"default", dkim.SPFPolicy{}, "v=spf1 mx -all", false},
		{"addresses", dkim.SPFPolicy{IPs: []string{"192.0.2.25", "198.51.100.7/24", " 2001:db8::25 ", "2001:db8:1::/48"}},
			"v=spf1 mx ip4:192.0.2.25 ip4:198.51.100.0/24 ip6:2001:db8::25 ip6:2001:db8:1::/48 -all", false},
		{"smarthost", dkim.SPFPolicy{NoMX: true, Includes: []string{"_spf.Provider.example"}}, "v=spf1 include:_spf.provider.example -all", false},
		{"both", dkim.SPFPolicy{IPs: []string{"192.0.2.1"}, Includes: []string{"spf.relay.example"}}, "v=spf1 mx ip4:192.0.2.1 include:spf.relay.example -all", false},
		{"bad address", dkim.SPFPolicy{IPs: []string{"192.0.2.300"}}, "", true},
		{"address with zone", dkim.SPFPolicy{IPs: []string{"fe80::1%eth0"}}, "", true},
		{"mapped v4", dkim.SPFPolicy{IPs: []string{"::ffff:192.0.2.1"}}, "", true},
		{"bad include", dkim.SPFPolicy{Includes: []string{"a b"}}, "", true},
		{"nothing", dkim.SPFPolicy{NoMX: true}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := dkim.SPFRecord("example.test", tc.p)
			if tc.err {
				if !errors.Is(err, dkim.ErrInvalid) {
					t.Fatalf("want ErrInvalid, got %v (%s)", err, r.Value)
				}
				return
			}
			if err != nil || r.Value != tc.want || r.Name != "example.test" {
				t.Fatalf("got %q at %s (%v), want %q", r.Value, r.Name, err, tc.want)
			}
		})
	}
}

func TestCheckRecords(t *testing.T) {
	k, _ := newKeyring(t)
	recs, err := k.Records("example.test", dkim.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	z := newZone()
	// Ed25519 published (as a provider may show it: split, spaced);
	// RSA not; an older SPF record; DMARC with a stricter policy; and a
	// DNS failure for nothing.
	v := recs[0].Value
	z.setTXT(recs[0].Name, v[:30]+" "+v[30:])
	z.setTXT("example.test", "google-site-verification=abc", "v=spf1 a -all")
	z.setTXT("_dmarc.example.test", "v=DMARC1; p=reject")
	got := dkim.CheckRecords(t.Context(), z, recs)
	want := []dkim.Publication{dkim.Published, dkim.Missing, dkim.Different, dkim.Published}
	for i, st := range got {
		if st.Status != want[i] {
			t.Errorf("%s: %s, want %s (found %q)", st.Record.Name, st.Status, want[i], st.Found)
		}
	}
	if len(got[2].Found) != 1 || got[2].Found[0] != "v=spf1 a -all" {
		t.Errorf("SPF found: %q", got[2].Found)
	}
	z.fail["_dmarc.example.test"] = true
	got = dkim.CheckRecords(t.Context(), z, recs[3:])
	if got[0].Status != dkim.Unknown || got[0].Err == nil {
		t.Errorf("DNS failure: %s %v", got[0].Status, got[0].Err)
	}
}
