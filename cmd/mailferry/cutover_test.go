package main_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

type cliSink struct {
	mu  sync.Mutex
	got int
}

func (s *cliSink) NewSession(*smtp.Conn) (smtp.Session, error) { return s, nil }
func (s *cliSink) Reset()                                      {}
func (s *cliSink) Logout() error                               { return nil }
func (s *cliSink) Mail(string, *smtp.MailOptions) error        { return nil }
func (s *cliSink) Rcpt(string, *smtp.RcptOptions) error        { return nil }
func (s *cliSink) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	s.mu.Lock()
	s.got++
	s.mu.Unlock()
	return err
}

// The cutover from the command line: the user list is imported, readiness
// says what stands in the way (exit 1), `domain migrate --disable`
// refuses and changes nothing, a test message through the smarthost
// proves the route, and --force turns migration off with the facts
// printed.
func TestCutoverCLI(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if q := req.Question[0]; q.Name == "smart.test." && q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR("smart.test. 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		} else if q.Name != "smart.test." {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	defer dnsSrv.Shutdown()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &cliSink{}
	srv := smtp.NewServer(sink)
	go srv.Serve(ln)
	defer srv.Close()

	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(conf, []byte(`{"hostname": "mx.example.test", "dns_resolver": "`+pc.LocalAddr().String()+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return mf(t, data, stdin, append(args, "--config", conf)...)
	}
	if _, stderr, code := run("", "domain", "migrate", "example.test", "--old", "[192.0.2.7]"); code != 0 {
		t.Fatalf("domain migrate: %s", stderr)
	}
	out, _, code := run("", "domain", "readiness", "example.test")
	if code != 1 || !strings.Contains(out, "Not proven") || strings.Contains(out, "can be turned off") {
		t.Fatalf("readiness (%d):\n%s", code, out)
	}
	list := filepath.Join(t.TempDir(), "users.ldif")
	os.WriteFile(list, []byte("dn: uid=ann,dc=example,dc=test\nmail: ann@example.test\n\ndn: uid=ben,dc=example,dc=test\nuid: ben\n"), 0o600)
	out, stderr, code := run("", "domain", "users", "example.test", "--import", list)
	if code != 0 || !strings.Contains(out, "imported 2 users (LDAP search output (LDIF))") || strings.Count(out, "not moved") != 2 {
		t.Fatalf("users --import (%d, %s):\n%s", code, stderr, out)
	}
	if _, stderr, code := run("not an address\n", "domain", "users", "example.test", "--import", "-"); code != 2 || !strings.Contains(stderr, "line 1") {
		t.Fatalf("bad list: exit %d: %s", code, stderr)
	}
	if out, _, _ := run("", "status"); !strings.Contains(out, "2 users listed") {
		t.Errorf("status does not show the list:\n%s", out)
	}
	_, stderr, code = run("", "domain", "migrate", "example.test", "--disable")
	if code != 1 || !strings.Contains(stderr, "stays on") || !strings.Contains(stderr, "ann@example.test") {
		t.Fatalf("disable while not ready: exit %d: %s", code, stderr)
	}
	if out, _, _ := run("", "domain", "list"); !strings.Contains(out, "example.test  on") {
		t.Fatalf("migration after a refused disable:\n%s", out)
	}

	if _, stderr, code := run("", "domain", "test-send", "example.test", "--to", "ann@example.test"); code != 2 {
		t.Fatalf("test message to a local address: exit %d: %s", code, stderr)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if _, stderr, code := run("", "domain", "route", "example.test", "--smarthost", "smart.test:"+port, "--tls", "none"); code != 0 {
		t.Fatalf("route: %s", stderr)
	}
	out, stderr, code = run("", "domain", "test-send", "example.test", "--to", "friend@far.test")
	if code != 0 || !strings.Contains(out, "delivered: smart.test accepted the test message to friend@far.test (250)") {
		t.Fatalf("test-send (%d, %s): %s", code, stderr, out)
	}
	sink.mu.Lock()
	if sink.got != 1 {
		t.Errorf("the smarthost got %d messages", sink.got)
	}
	sink.mu.Unlock()
	if out, _, _ := run("", "domain", "readiness", "example.test"); !strings.Contains(out, "✓ Outbound route: Proven") {
		t.Errorf("readiness after the test message:\n%s", out)
	}
	_, stderr, code = run("", "domain", "migrate", "example.test", "--disable", "--force")
	if code != 0 || !strings.Contains(stderr, "turned off although not ready") {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if out, _, _ := run("", "domain", "list"); !strings.Contains(out, "example.test  off") {
		t.Fatalf("after --force:\n%s", out)
	}
}
