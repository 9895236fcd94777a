package testkit

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Zone is an authoritative DNS server for test zones on 127.0.0.1, UDP
// and TCP on one port (Addr).
type Zone struct {
	// Addr is the server's host:port (dns_resolver, relay.Options.Resolver).
	Addr string

	mu   sync.Mutex
	recs map[string][]dns.RR // by lower-case FQDN
}

// StartZone starts an empty zone, shut down when the test ends.
func StartZone(t testing.TB) *Zone {
	t.Helper()
	z := &Zone{recs: map[string][]dns.RR{}}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for i := 0; i < 20; i++ { // the TCP port of the UDP one may be taken
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	z.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: ln, Handler: z}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return z
}

// Add adds records in zone-file form ("two.test. 60 IN MX 10 mx1.two.test.").
func (z *Zone) Add(t testing.TB, lines ...string) {
	t.Helper()
	z.put(t, false, lines)
}

// Set replaces every record of the names the lines own with the lines'.
func (z *Zone) Set(t testing.TB, lines ...string) {
	t.Helper()
	z.put(t, true, lines)
}

func (z *Zone) put(t testing.TB, replace bool, lines []string) {
	t.Helper()
	rrs := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil || rr == nil {
			t.Fatalf("record %q: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	fresh := map[string]bool{}
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		if replace && !fresh[name] {
			fresh[name] = true
			z.recs[name] = nil
		}
		z.recs[name] = append(z.recs[name], rr)
	}
}

// Del removes every record of the names given (FQDNs).
func (z *Zone) Del(names ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, n := range names {
		delete(z.recs, strings.ToLower(n))
	}
}

// ServeDNS answers a query from the records set (dns.Handler).
func (z *Zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		z.mu.Lock()
		rrs, ok := z.recs[strings.ToLower(q.Name)]
		z.mu.Unlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	w.WriteMsg(m)
}
