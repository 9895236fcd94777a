package core_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mailferry/core"
	"mailferry/core/dkim"
	"mailferry/core/store"
)

// txtZone is a DNS the test owns that serves TXT records only.
type txtZone struct {
	mu  sync.Mutex
	txt map[string][]string
}

func (z *txtZone) set(name string, v ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.txt[strings.ToLower(strings.TrimSuffix(name, "."))] = v
}

func nx(n string) error { return &net.DNSError{Err: "no such host", Name: n, IsNotFound: true} }

func (z *txtZone) LookupTXT(_ context.Context, n string) ([]string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if v, ok := z.txt[strings.ToLower(strings.TrimSuffix(n, "."))]; ok {
		return v, nil
	}
	return nil, nx(n)
}
func (z *txtZone) LookupMX(_ context.Context, n string) ([]*net.MX, error)        { return nil, nx(n) }
func (z *txtZone) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) { return nil, nx(n) }
func (z *txtZone) LookupAddr(_ context.Context, n string) ([]string, error)       { return nil, nx(n) }

func TestCoreDKIM(t *testing.T) {
	z := &txtZone{txt: map[string][]string{}}
	dir := t.TempDir()
	co, err := core.Open(core.Config{DataDir: dir, Hostname: "mx.example.test", AuthResolver: z})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()

	if _, err := co.DKIMRecords(ctx, "unknown.test", dkim.SPFPolicy{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("records of a domain that is not local: %v", err)
	}
	if _, err := co.AddDomain(ctx, "Example.test"); err != nil {
		t.Fatal(err)
	}
	recs, err := co.DKIMRecords(ctx, "example.test", dkim.SPFPolicy{IPs: []string{"192.0.2.25"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || !strings.HasPrefix(recs[0].String(), "mf") || !strings.Contains(recs[0].String(), `._domainkey.example.test TXT "v=DKIM1; k=ed25519; p=`) ||
		recs[2].Value != "v=spf1 mx ip4:192.0.2.25 -all" || recs[3].Name != "_dmarc.example.test" {
		t.Fatalf("records: %v", recs)
	}
	fi, err := os.Stat(filepath.Join(dir, "dkim", "example.test"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key folder: %v %v", fi, err)
	}

	// Sign as the relay will, publish, check as the relay will.
	msg := []byte("From: a@example.test\r\nTo: b@elsewhere.example\r\nSubject: hi\r\n\r\nhello\r\n")
	signed, err := co.DKIM().Sign("example.test", msg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := co.CheckDKIMRecords(ctx, "example.test", dkim.SPFPolicy{IPs: []string{"192.0.2.25"}})
	if err != nil || st[0].Status != dkim.Missing {
		t.Fatalf("before publishing: %+v %v", st, err)
	}
	for _, r := range recs {
		z.set(r.Name, r.Value)
	}
	st, _ = co.CheckDKIMRecords(ctx, "example.test", dkim.SPFPolicy{IPs: []string{"192.0.2.25"}})
	for _, s := range st {
		if s.Status != dkim.Published {
			t.Errorf("%s: %s", s.Record.Name, s.Status)
		}
	}
	v, err := co.AuthVerifier()
	if err != nil {
		t.Fatal(err)
	}
	ar := v.AuthenticationResults(ctx, dkim.Session{ClientIP: netip.MustParseAddr("192.0.2.25"), HELO: "mx.example.test", MailFrom: "a@example.test"}, signed)
	for _, want := range []string{"Authentication-Results: mx.example.test;", "spf=pass", "dkim=pass", "dmarc=pass"} {
		if !strings.Contains(ar, want) {
			t.Errorf("%q lacks %s", ar, want)
		}
	}

	// Rotation: refused until DNS serves the new keys.
	if _, err := co.ActivateDKIM(ctx, "example.test", false); !errors.Is(err, dkim.ErrNoPending) {
		t.Fatalf("activate with nothing pending: %v", err)
	}
	p, err := co.RotateDKIM(ctx, "example.test")
	if err != nil || p.State != dkim.Pending {
		t.Fatalf("rotate: %v %v", p, err)
	}
	if _, err := co.ActivateDKIM(ctx, "example.test", false); !errors.Is(err, core.ErrDNSNotReady) || !strings.Contains(err.Error(), p.Keys[0].Selector) {
		t.Fatalf("activate before DNS: %v", err)
	}
	for _, k := range p.Keys {
		z.set(k.Selector+"._domainkey.example.test", k.TXT())
	}
	a, err := co.ActivateDKIM(ctx, "example.test", false)
	if err != nil || a.Name != p.Name || a.State != dkim.Active {
		t.Fatalf("activate: %v %v", a, err)
	}
	gens, err := co.DKIMKeys(ctx, "example.test")
	if err != nil || len(gens) != 2 || gens[1].State != dkim.Retired {
		t.Fatalf("keys after rotation: %+v %v", gens, err)
	}
	// Forced activation skips the DNS check.
	if _, err := co.RotateDKIM(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.ActivateDKIM(ctx, "example.test", true); err != nil {
		t.Fatalf("forced activation: %v", err)
	}
}
