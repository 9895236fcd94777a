package relay_test

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailferry/core/relay"
)

// Mail from outside delivered here gets the Authentication-Results field
// Options.AuthResults gives, above the Received field, the rest of its bytes
// unchanged; mail from an authenticated user gets none.
func TestAuthResultsOnInboundMail(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	type call struct {
		ip       netip.Addr
		mailFrom string
	}
	calls := make(chan call, 4)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg,
		AuthResults: func(_ context.Context, ip netip.Addr, helo, mailFrom string, msg []byte) string {
			calls <- call{ip, mailFrom}
			return "Authentication-Results: mx.mailferry.test; spf=none\r\n"
		}})
	raw := message("from outside", "hello")
	if err := send(rr.smtpAddr, "someone@elsewhere.test", []string{alice}, raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 1 })
	got := e.messages(t, e.inbox)[0]
	const ar = "Authentication-Results: mx.mailferry.test; spf=none\r\n"
	if !bytes.HasPrefix(got, []byte(ar)) {
		t.Fatalf("delivered message does not start with the Authentication-Results field:\n%s", got)
	}
	splitReceived(t, got[len(ar):], raw)
	if c := <-calls; c.mailFrom != "someone@elsewhere.test" || !c.ip.IsLoopback() {
		t.Fatalf("AuthResults called with %+v", c)
	}
	// An authenticated user's own mail is not checked.
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{alice}, message("own", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second delivery", 5*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 2 })
	if second := e.messages(t, e.inbox)[1]; bytes.Contains(second, []byte("Authentication-Results")) {
		t.Fatalf("an authenticated user's mail got Authentication-Results:\n%s", second)
	}
	select {
	case c := <-calls:
		t.Fatalf("AuthResults called for an authenticated user's mail: %+v", c)
	default:
	}
}

// A sender from outside cannot pass off results as ours (RFC 8601 section
// 5): Authentication-Results fields in the message claiming our
// authserv-id, however written (case, a trailing dot, folding, a comment
// before it), are renamed X-Untrusted-Authentication-Results; another
// server's, a field that only starts like it, and the body's lines are
// kept byte for byte.
func TestForgedAuthResultsRenamed(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{
		AuthResults: func(context.Context, netip.Addr, string, string, []byte) string {
			return "Authentication-Results: mx.mailferry.test;\r\n\tspf=none\r\n"
		}})
	forged := []string{
		"Authentication-Results: mx.mailferry.test; dkim=pass header.d=bank.example\r\n",
		"authentication-results:MX.Mailferry.Test.;dkim=pass\r\n",
		"Authentication-Results :\r\n\t(a \\) comment) mx.mailferry.test 1;\r\n\tdkim=pass\r\n",
	}
	kept := []string{
		"Authentication-Results: mx.other.example; dkim=pass header.d=bank.example\r\n",
		"Authentication-Results-Extra: mx.mailferry.test; dkim=pass\r\n",
		"Authentication-Results: mx.mailferry.test.evil.example; dkim=pass\r\n",
	}
	head := "From: bank <a@bank.example>\r\n" + strings.Join(forged, "") + strings.Join(kept, "") + "Subject: pay\r\n"
	body := "\r\nAuthentication-Results: mx.mailferry.test; dkim=pass\r\nbody\r\n"
	if err := send(rr.smtpAddr, "a@bank.example", []string{alice}, []byte(head+body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 1 })
	got := string(e.messages(t, e.inbox)[0])
	renamed := "From: bank <a@bank.example>\r\n" +
		"X-Untrusted-Authentication-Results: mx.mailferry.test; dkim=pass header.d=bank.example\r\n" +
		"X-Untrusted-Authentication-Results:MX.Mailferry.Test.;dkim=pass\r\n" +
		"X-Untrusted-Authentication-Results :\r\n\t(a \\) comment) mx.mailferry.test 1;\r\n\tdkim=pass\r\n" +
		strings.Join(kept, "") + "Subject: pay\r\n"
	if !strings.HasPrefix(got, "Authentication-Results: mx.mailferry.test;\r\n\tspf=none\r\n") || !strings.HasSuffix(got, renamed+body) {
		t.Fatalf("delivered:\n%s\nwant ours on top and it to end with:\n%s", got, renamed+body)
	}
}
