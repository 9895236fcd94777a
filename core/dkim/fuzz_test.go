package dkim

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// FuzzScanHeader: the header scanner never panics, keeps its bounds, and
// every field it names has a valid name and a raw value inside the message.
func FuzzScanHeader(f *testing.F) {
	for _, s := range []string{
		"", "\r\n", "From: a@b\r\n\r\nbody", "From: a\n b\n\nx", " cont\r\nA: b\r\n",
		"A : b\r\nB:\r\n\tc\r\n d\r\n\r\n", "no colon\r\n\r\n", "\xff: \xfe\r\n\r\n", "A: b\rC: d\r\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := scanHeader(msg)
		if len(h.fields) > maxFields || h.size > len(msg) || h.size < 0 {
			t.Fatalf("bounds: %d fields, size %d of %d", len(h.fields), h.size, len(msg))
		}
		for _, fl := range h.fields {
			if fl.rawStart < 0 || fl.rawStart+len(fl.raw) > len(msg) || !bytes.Equal(msg[fl.rawStart:fl.rawStart+len(fl.raw)], fl.raw) {
				t.Fatalf("raw value outside the message: %q", fl.raw)
			}
			for i := 0; i < len(fl.name); i++ {
				if c := fl.name[i]; c < 33 || c > 126 || c == ':' {
					t.Fatalf("invalid name %q", fl.name)
				}
			}
			if strings.ContainsAny(fl.value(), "\r\n") {
				t.Fatalf("unfolded value has a line end: %q", fl.value())
			}
		}
		_, _ = fromDomain(msg)
		_ = tags(string(msg))
	})
}

// nxResolver answers nothing.
type nxResolver struct{}

func (nxResolver) LookupTXT(_ context.Context, n string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}
func (nxResolver) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}
func (nxResolver) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}
func (nxResolver) LookupAddr(_ context.Context, n string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}

// FuzzAuthenticationResults: whatever the message and session, the result
// is one well-formed header field.
func FuzzAuthenticationResults(f *testing.F) {
	f.Add([]byte("From: a@example.test\r\n\r\nx\r\n"), "helo", "a@example.test")
	f.Add([]byte("DKIM-Signature: v=1; d=x; s=y; a=rsa-sha256; h=from; bh=; b=\r\nFrom: a@x\r\n\r\n"), "h\r\nX: y", "\"\\")
	f.Add([]byte("From: \"a;b\" <a@b.c>\n\n"), "", "")
	v, err := NewVerifier(VerifierOptions{Resolver: nxResolver{}, Hostname: "mx.test"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte, helo, from string) {
		field := v.AuthenticationResults(context.Background(), Session{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: helo, MailFrom: from}, msg)
		if !strings.HasPrefix(field, "Authentication-Results: mx.test;\r\n\t") || !strings.HasSuffix(field, "\r\n") {
			t.Fatalf("field %q", field)
		}
		inner := strings.ReplaceAll(strings.TrimSuffix(field, "\r\n"), "\r\n\t", "")
		if strings.ContainsAny(inner, "\r\n") {
			t.Fatalf("stray line end in %q", field)
		}
		for i := 0; i < len(inner); i++ {
			if inner[i] < 0x20 || inner[i] > 0x7e {
				t.Fatalf("byte %#x in %q", inner[i], field)
			}
		}
	})
}
