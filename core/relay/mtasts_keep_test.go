package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core/relay"
	"mailferry/core/testkit"
)

// An MTA-STS policy outlives a restart (RFC 8461 section 5.1): after a
// relay learnt sts.test's enforce policy, an attacker who strips the TXT
// record and points the MX at a host of their own gets nothing from the
// next relay on the same store — the kept policy still holds until it
// expires — while the message would go to them without it.
func TestMTASTSPolicyKeptAcrossRestart(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	ca := testkit.NewCA(t, "Test CA")
	good := startMXSink(t, ca.ServerConfig(t, "mx.sts.test"), nil)
	rogue := startMXSink(t, nil, nil)
	stsPort := stsServer(t, ca, map[string]string{
		"mta-sts.sts.test": "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
	})
	d.Add(t,
		"sts.test. 60 IN MX 10 mx.sts.test.",
		"mx.sts.test. 60 IN A 127.0.0.1",
		`_mta-sts.sts.test. 60 IN TXT "v=STSv1; id=1"`,
		"mta-sts.sts.test. 60 IN A 127.0.0.1",
		"mx.rogue.test. 60 IN A 127.0.0.1",
	)
	ports := map[string]int{"mx.sts.test": good.port, "mx.rogue.test": rogue.port}
	newRelay := func() *relay.Relay {
		r, err := relay.New(relay.Options{Store: e.st, Logger: testLogger(t), Resolver: mustResolver(t, d.Addr), RootCAs: ca.Pool,
			MXPort: func(h string) int { return ports[h] }, MTASTSPort: stsPort})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ctx := context.Background()
	body := []byte("Subject: x\r\n\r\ny\r\n")
	r1 := newRelay()
	if remote, err := r1.Deliver(ctx, domain, relay.Route{Kind: relay.RouteMX}, alice, "sam@sts.test", body); err != nil || remote != "mx.sts.test" {
		t.Fatalf("first delivery: %q, %v", remote, err)
	}
	if m := good.messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("sts.test got %+v", m)
	}
	r1.Close()

	d.Del("_mta-sts.sts.test.", "sts.test.")
	d.Add(t, "sts.test. 60 IN MX 10 mx.rogue.test.")
	r2 := newRelay()
	defer r2.Close()
	_, err := r2.Deliver(ctx, domain, relay.Route{Kind: relay.RouteMX}, alice, "sam@sts.test", body)
	var de *relay.DeliveryError
	if !errors.As(err, &de) || de.Permanent || !strings.Contains(de.Detail, "MTA-STS") {
		t.Fatalf("after a restart, with the TXT record stripped: %v", err)
	}
	if m := rogue.messages(); len(m) != 0 {
		t.Fatalf("the rogue exchanger got %d messages", len(m))
	}
}
