package core_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"mailferry/core"
	"mailferry/core/dkim"
)

// smartSink is a plain SMTP relay on 127.0.0.1 that keeps what it gets.
type smartSink struct {
	mu  sync.Mutex
	got [][]byte
	to  []string
}

func (s *smartSink) NewSession(*smtp.Conn) (smtp.Session, error) { return s, nil }
func (s *smartSink) Reset()                                      {}
func (s *smartSink) Logout() error                               { return nil }
func (s *smartSink) Mail(string, *smtp.MailOptions) error        { return nil }
func (s *smartSink) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.to = append(s.to, to)
	return nil
}
func (s *smartSink) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, b)
	return err
}

// A route set in the configuration (outbound_routes) is the one mail
// takes, and wins over a route recorded in the store; a domain with no
// old server and no route sends directly (the default after migration).
func TestOutboundRouteFromConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &smartSink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "smarthost.test"
	go srv.Serve(ln)
	defer srv.Close()

	// The smarthost's name is known only to a DNS server of the test's own,
	// which dns_resolver names.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if q := req.Question[0]; q.Name == "relay.smart.test." {
			if q.Qtype == dns.TypeA {
				rr, _ := dns.NewRR("relay.smart.test. 60 IN A 127.0.0.1")
				m.Answer = append(m.Answer, rr)
			}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	defer dnsSrv.Shutdown()

	sub := freeAddr(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test",
		IMAPListen: core.Off, IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionTLSListen: core.Off, POP3Listen: core.Off, POP3SListen: core.Off,
		SubmissionListen: sub,
		DNSResolver:      pc.LocalAddr().String(),
		OutboundRoutes: map[string]core.OutboundRouteConfig{
			"Example.TEST": {Route: "smarthost", Smarthost: "relay.smart.test:" + port, TLS: "none"},
		}}
	co, err := core.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddAccount(ctx, "alice@example.test", "Alice-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if err := co.SetOutboundRoute(ctx, "example.test", core.OutboundRoute{Kind: core.RouteMX}); err != nil {
		t.Fatal(err)
	}
	info, err := co.OutboundRouteOf(ctx, "example.test")
	if err != nil || !info.FromConfig || info.Effective != core.RouteSmarthost {
		t.Fatalf("route %+v, %v", info, err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.DialStartTLS(sub, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "Alice-Secret-1")); err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@example.test\r\nTo: friend@gmail.test\r\nSubject: hi\r\n\r\nhello\r\n"
	if err := c.SendMail("alice@example.test", []string{"friend@gmail.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.got)
		sink.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the smarthost got nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !bytes.HasSuffix(sink.got[0], []byte(msg)) || sink.to[0] != "friend@gmail.test" {
		t.Errorf("smarthost got %q for %q", sink.got[0], sink.to)
	}
	// It left DKIM-signed with the domain's keys: both signatures verify
	// against the records Mailferry tells the admin to publish.
	recs, err := co.DKIMRecords(ctx, "example.test", dkim.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	txt := map[string]string{}
	for _, r := range recs {
		txt[r.Name] = r.Value
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(sink.got[0]), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{txt[strings.TrimSuffix(name, ".")]}, nil }})
	if err != nil || len(verifs) != 2 {
		t.Fatalf("DKIM signatures of the mail that left: %d, %v", len(verifs), err)
	}
	for _, v := range verifs {
		if v.Err != nil || v.Domain != "example.test" {
			t.Errorf("DKIM signature of %s: %v", v.Domain, v.Err)
		}
	}
}

func TestOutboundRouteConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		rc   core.OutboundRouteConfig
		want string
	}{
		{core.OutboundRouteConfig{Route: "carrier-pigeon"}, "carrier-pigeon"},
		{core.OutboundRouteConfig{Route: "smarthost"}, "needs a host"},
		{core.OutboundRouteConfig{Route: "smarthost", Smarthost: "relay.test", Username: "u"}, "password_file"},
		{core.OutboundRouteConfig{Route: "mx", Smarthost: "relay.test"}, "smarthost route only"},
		{core.OutboundRouteConfig{Route: "smarthost", Smarthost: "relay.test", TLS: "none", Pin: strings.Repeat("ab", 32)}, "pin needs TLS"},
		{core.OutboundRouteConfig{Route: "smarthost", Smarthost: "relay.test", Pin: "abcd"}, "64 hex digits"},
	} {
		err := core.Config{OutboundRoutes: map[string]core.OutboundRouteConfig{"example.test": tc.rc}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.rc, err, tc.want)
		}
	}
	err := core.Config{DNSResolver: "localhost"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "dns_resolver") {
		t.Errorf("dns_resolver without a port: %v", err)
	}
	co, err := core.Open(core.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	err = co.SetOutboundRoute(context.Background(), "never.test", core.OutboundRoute{Kind: core.RouteMX})
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("route of an unknown domain: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
