package relay_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/testkit"
)

// Deliver sends one message now through a route, signed, and reports the
// server that took it, or why none did: by MX (the first exchanger down,
// the second takes it), to a null MX (permanent), through a smarthost
// with AUTH, and through one that refuses the recipient. Nothing is
// queued.
func TestDeliverNow(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	good := startMXSink(t, nil, nil)
	down := closedPort(t)
	d.Add(t,
		"two.test. 60 IN MX 10 mx1.two.test.",
		"two.test. 60 IN MX 20 mx2.two.test.",
		"mx1.two.test. 60 IN A 127.0.0.1",
		"mx2.two.test. 60 IN A 127.0.0.1",
		"null.test. 60 IN MX 0 .",
		"mailferry.test. 60 IN A 127.0.0.1", // the smarthost's name, as its certificate says
	)
	ports := map[string]int{"mx1.two.test": down, "mx2.two.test": good.port}
	tlsCfg, pool := testTLS(t)
	smart := startMXSink(t, tlsCfg, map[string]string{"relay-user": "Relay-Secret-1"})
	refusing := startMXSink(t, nil, nil)
	refusing.rcptErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
	r, err := relay.New(relay.Options{
		Store:    e.st,
		Logger:   testLogger(t),
		Resolver: mustResolver(t, d.Addr),
		RootCAs:  pool,
		MXPort:   func(host string) int { return ports[host] },
		Sign: func(dom string, msg []byte) ([]byte, error) {
			return append([]byte("X-Test-Signed: "+dom+"\r\n"), msg...), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	body := []byte("Subject: test\r\n\r\nhello\r\n")

	remote, err := r.Deliver(ctx, domain, relay.Route{Kind: relay.RouteMX}, "postmaster@"+domain, "ann@two.test", body)
	if err != nil || remote != "mx2.two.test" {
		t.Fatalf("by MX: %q, %v", remote, err)
	}
	if m := good.messages(); len(m) != 1 || !bytes.Equal(m[0].Data, append([]byte("X-Test-Signed: "+domain+"\r\n"), body...)) {
		t.Fatalf("the exchanger got %+v", m)
	}

	_, err = r.Deliver(ctx, domain, relay.Route{Kind: relay.RouteMX}, "postmaster@"+domain, "x@null.test", body)
	var de *relay.DeliveryError
	if !errors.As(err, &de) || !de.Permanent || de.Status != "5.1.10" {
		t.Fatalf("to a null MX: %v", err)
	}

	rt := relay.Route{Kind: relay.RouteSmarthost, Host: "mailferry.test", Port: smart.port, Username: "relay-user", Password: "Relay-Secret-1"}
	remote, err = r.Deliver(ctx, domain, rt, "postmaster@"+domain, "ann@far.test", body)
	if err != nil || remote != "mailferry.test" {
		t.Fatalf("by smarthost: %q, %v", remote, err)
	}
	if m := smart.messages(); len(m) != 1 || m[0].AuthUser != "relay-user" || !m[0].TLS {
		t.Fatalf("the smarthost got %+v", m)
	}

	rt = relay.Route{Kind: relay.RouteSmarthost, Host: "127.0.0.1", Port: refusing.port, TLS: relay.SmarthostNone}
	_, err = r.Deliver(ctx, domain, rt, "postmaster@"+domain, "ann@far.test", body)
	if !errors.As(err, &de) || !de.Permanent || de.Status != "5.7.1" || de.Remote != "127.0.0.1" {
		t.Fatalf("refused by the smarthost: %v", err)
	}

	for _, bad := range []relay.Route{{Kind: relay.RouteOldServer}, {Kind: relay.RouteDefault}, {Kind: relay.RouteSmarthost}} {
		if _, err := r.Deliver(ctx, domain, bad, "postmaster@"+domain, "ann@two.test", body); !errors.Is(err, relay.ErrRoute) {
			t.Errorf("route %+v: %v, want ErrRoute", bad, err)
		}
	}
	if _, err := r.Deliver(ctx, domain, relay.Route{Kind: relay.RouteMX}, "postmaster@"+domain, "no-at-sign", body); err == nil {
		t.Error("a recipient without a domain was accepted")
	}
	if q, err := e.st.Queue(ctx); err != nil || len(q) != 0 {
		t.Errorf("Deliver queued %d items (%v)", len(q), err)
	}
}
