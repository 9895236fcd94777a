package testkit

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// QuietTLS makes the TLS handshake of a client on c (a connection whose
// STARTTLS or STLS was just answered) and fails the test when the server
// sends anything inside TLS within 2 s, before the client said a word:
// an answer there would be to a command injected in clear before the
// handshake (CVE-2021-33515's kind). It returns the TLS connection with
// a deadline 10 s ahead.
func QuietTLS(t testing.TB, c net.Conn, cfg *tls.Config) *tls.Conn {
	t.Helper()
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, _ := io.ReadAll(tc); len(got) > 0 {
		t.Fatalf("inside TLS, before the client said anything: %q", got)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc
}
