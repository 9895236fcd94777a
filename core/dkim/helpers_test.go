package dkim_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/dkim"
)

// zone is a DNS the test owns: TXT, MX and address records by name (no
// final dot, any case), and names that fail temporarily.
type zone struct {
	mu   sync.Mutex
	txt  map[string][]string
	mx   map[string][]*net.MX
	ip   map[string][]net.IPAddr
	fail map[string]bool
}

var _ dkim.Resolver = (*zone)(nil)

func newZone() *zone {
	return &zone{txt: map[string][]string{}, mx: map[string][]*net.MX{}, ip: map[string][]net.IPAddr{}, fail: map[string]bool{}}
}

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (z *zone) setTXT(name string, txt ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.txt[key(name)] = txt
}

// publish puts every record in the zone.
func (z *zone) publish(recs []dkim.Record) {
	for _, r := range recs {
		z.setTXT(r.Name, r.Value)
	}
}

func (z *zone) answer(name string) (*net.DNSError, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.fail[key(name)] {
		return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}, true
	}
	return nil, false
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (z *zone) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err, ok := z.answer(name); ok {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if t, ok := z.txt[key(name)]; ok {
		return t, nil
	}
	return nil, notFound(name)
}

func (z *zone) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if err, ok := z.answer(name); ok {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if m, ok := z.mx[key(name)]; ok {
		return m, nil
	}
	return nil, notFound(name)
}

func (z *zone) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if err, ok := z.answer(host); ok {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if a, ok := z.ip[key(host)]; ok {
		return a, nil
	}
	return nil, notFound(host)
}

func (z *zone) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return nil, notFound(addr)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newKeyring returns a keyring in a test folder whose clock starts on
// 2026-12-15.
func newKeyring(t *testing.T) (*dkim.Keyring, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 15, 10, 0, 0, 0, time.UTC)}
	return dkim.NewKeyring(t.TempDir()+"/dkim", &dkim.Options{Now: c.Now, RetiredKeep: 7 * 24 * time.Hour}), c
}

// sample is a plain message as a mail client submits it.
const sample = "From: Alice <alice@example.test>\r\n" +
	"To: Bob <bob@elsewhere.example>\r\n" +
	"Cc: carol@elsewhere.example\r\n" +
	"Subject: Quarterly figures\r\n" +
	"Date: Tue, 15 Dec 2026 10:00:00 +0100\r\n" +
	"Message-ID: <1234@example.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"X-Mailer: test\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"\r\n" +
	"the figures  are attached.   \r\n" +
	"\r\n" +
	"\r\n"
