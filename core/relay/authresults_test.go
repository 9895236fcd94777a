package relay_test

import (
	"bytes"
	"context"
	"net/netip"
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
