package relay_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"mailferry/core/relay"
	"mailferry/core/testkit"
)

// A smarthost with a certificate of its own (no CA the relay trusts) is
// used only with its certificate pinned: the right pin delivers (STARTTLS
// and implicit TLS), a wrong one or none does not; a pin is refused
// without TLS and when it is not a SHA-256 fingerprint.
func TestSmarthostPinnedCertificate(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	d.Add(t, "relay.corp.test. 60 IN A 127.0.0.1")
	own := testkit.NewCA(t, "Corp self-made CA")
	cfg := own.ServerConfig(t, "relay.corp.test")
	sink := startMXSink(t, cfg, nil)
	sum := sha256.Sum256(cfg.Certificates[0].Certificate[0])
	pin := strings.ToUpper(hex.EncodeToString(sum[:]))
	wrong := sha256.Sum256([]byte("another certificate"))
	r, err := relay.New(relay.Options{Store: e.st, Logger: testLogger(t), Resolver: mustResolver(t, d.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	body := []byte("Subject: x\r\n\r\ny\r\n")
	route := func(p string) relay.Route {
		return relay.Route{Kind: relay.RouteSmarthost, Host: "relay.corp.test", Port: sink.port, Pin: p}
	}
	if _, err := r.Deliver(ctx, domain, route(""), alice, "x@far.test", body); err == nil {
		t.Fatal("an unpinned certificate nobody vouches for was accepted")
	}
	var de *relay.DeliveryError
	if _, err := r.Deliver(ctx, domain, route(hex.EncodeToString(wrong[:])), alice, "x@far.test", body); !errors.As(err, &de) || !strings.Contains(de.Detail, "pinned") {
		t.Fatalf("wrong pin: %v", err)
	}
	if len(sink.messages()) != 0 {
		t.Fatal("mail went to a smarthost whose certificate was refused")
	}
	if remote, err := r.Deliver(ctx, domain, route(pin), alice, "x@far.test", body); err != nil || remote != "relay.corp.test" {
		t.Fatalf("right pin: %q, %v", remote, err)
	}
	if m := sink.messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("the smarthost got %+v", m)
	}
	if s := route(pin).String(); !strings.Contains(s, "certificate pinned "+strings.ToLower(pin[:2])+":") {
		t.Errorf("route described as %q", s)
	}
	for _, bad := range []relay.Route{
		{Kind: relay.RouteSmarthost, Host: "relay.corp.test", TLS: relay.SmarthostNone, Pin: pin},
		{Kind: relay.RouteSmarthost, Host: "relay.corp.test", Pin: "12:34"},
		{Kind: relay.RouteMX, Pin: pin},
	} {
		if err := bad.Validate(); !errors.Is(err, relay.ErrRoute) {
			t.Errorf("%+v: %v, want ErrRoute", bad, err)
		}
	}
}
