package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"mailferry/core/certs"
	"mailferry/core/certs/pebbletest"
)

// serveTLS serves m's certificate on a loopback listener: each connection
// does its handshake and then echoes lines, so a test can tell an open
// connection still works.
func serveTLS(t *testing.T, m *certs.Manager) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// dial connects with a client that trusts roots and expects name.
func dial(t *testing.T, addr, name string, roots *x509.CertPool) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", addr, name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echo(t *testing.T, c *tls.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write on the open connection: %v", err)
	}
	b := make([]byte, len(s))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != s {
		t.Fatalf("read on the open connection: %q %v", b, err)
	}
}

// runManager runs m.Run and its challenge listeners until the test ends.
func runManager(t *testing.T, m *certs.Manager, httpPort, tlsPort int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var lns []net.Listener
	for _, l := range []struct {
		port  int
		serve func(net.Listener) error
	}{{httpPort, m.ServeHTTP01}, {tlsPort, m.ServeTLSALPN01}} {
		if l.port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(l.port))
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() { defer wg.Done(); l.serve(ln) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	})
}

func waitSource(t *testing.T, m *certs.Manager, source string) certs.Info {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		in := m.Info()
		if in.Source == source {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate source is %s, not %s; problem: %s", in.Source, source, in.Problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSelfSignedDefault(t *testing.T) {
	dir := t.TempDir()
	m, err := certs.New(certs.Options{SelfSignedDir: filepath.Join(dir, "tls"), SelfSignedHosts: []string{"mail.example.test", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	in := m.Info()
	if in.Source != certs.SourceSelfSigned || in.Subject != "mail.example.test" || in.NotAfter.Before(time.Now().AddDate(9, 0, 0)) {
		t.Fatalf("self-signed info: %+v", in)
	}
	again, err := certs.Inspect(certs.Options{SelfSignedDir: filepath.Join(dir, "tls")})
	if err != nil || again.Leaf.SerialNumber.Cmp(in.Leaf.SerialNumber) != 0 {
		t.Fatalf("Inspect: %+v %v", again, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(in.Leaf)
	c := dial(t, serveTLS(t, m), "mail.example.test", pool)
	echo(t, c, "hello\n")
}

// TestFileReload: cert_file/key_file replaced on disk (an admin's certbot)
// serve new handshakes without a restart; a half-written pair leaves the
// old certificate in service; an open connection goes on.
func TestFileReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(name string) *x509.Certificate {
		gen := filepath.Join(dir, name)
		c, err := certs.SelfSigned(gen, []string{name})
		if err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{"cert.pem": certFile, "key.pem": keyFile} {
			b, err := os.ReadFile(filepath.Join(gen, src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".new", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".new", dst); err != nil {
				t.Fatal(err)
			}
		}
		return c.Leaf
	}
	first := write("one.example.test")
	m, err := certs.New(certs.Options{CertFile: certFile, KeyFile: keyFile, SelfSignedDir: filepath.Join(dir, "tls")})
	if err != nil {
		t.Fatal(err)
	}
	if in := m.Info(); in.Source != certs.SourceFile || in.Subject != "one.example.test" {
		t.Fatalf("info: %+v", in)
	}
	addr := serveTLS(t, m)
	roots := x509.NewCertPool()
	roots.AddCert(first)
	old := dial(t, addr, "one.example.test", roots)
	echo(t, old, "before\n")

	// A certificate without its key: not loadable, the old one stays.
	gen, err := certs.SelfSigned(filepath.Join(dir, "half"), []string{"half.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "half", "cert.pem"))
	os.WriteFile(certFile, b, 0o600)
	time.Sleep(certs.FileCheckInterval + 100*time.Millisecond)
	dial(t, addr, "one.example.test", roots).Close()
	if in := m.Info(); in.Subject != "one.example.test" || in.Problem == "" {
		t.Fatalf("after a half-written pair: %+v", in)
	}
	_ = gen

	second := write("two.example.test")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		served := c.ConnectionState().PeerCertificates[0]
		c.Close()
		if served.Equal(second) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s after the files changed", served.Subject)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if in := m.Info(); in.Subject != "two.example.test" || in.Problem != "" {
		t.Fatalf("after reload: %+v", in)
	}
	roots.AddCert(second)
	dial(t, addr, "two.example.test", roots).Close()
	echo(t, old, "after\n")
}

// TestACME gets a certificate from Pebble over each challenge type, then
// renews it: an open connection goes on with the old certificate, a new
// one sees the new; the cache is private and reused by the next Manager.
func TestACME(t *testing.T) {
	for _, typ := range []string{certs.HTTP01, certs.TLSALPN01} {
		t.Run(typ, func(t *testing.T) {
			port := pebbletest.FreePort(t)
			var httpPort, tlsPort int
			if typ == certs.HTTP01 {
				httpPort = port
			} else {
				tlsPort = port
			}
			p := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
			data := t.TempDir()
			opts := certs.Options{
				SelfSignedDir: filepath.Join(data, "tls"),
				ACME: &certs.ACMEOptions{
					Email: "postmaster@example.test", Directory: p.Directory, DirectoryCA: p.DirectoryCA,
					Names:    []string{"mail.example.test", "imap.example.test"},
					CacheDir: filepath.Join(data, "acme"), Challenges: []string{typ},
				},
			}
			m, err := certs.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			if in := m.Info(); in.Source != certs.SourceSelfSigned || in.Wanted != certs.SourceACME {
				t.Fatalf("before issuance: %+v", in)
			}
			runManager(t, m, httpPort, tlsPort)
			in := waitSource(t, m, certs.SourceACME)
			if in.Problem != "" || len(in.Names) != 2 || !in.RenewAt.After(time.Now()) || !in.RenewAt.Before(in.NotAfter) {
				t.Fatalf("ACME info: %+v", in)
			}
			roots := p.Roots(t)
			addr := serveTLS(t, m)
			old := dial(t, addr, "imap.example.test", roots)
			first := old.ConnectionState().PeerCertificates[0]
			echo(t, old, "before\n")

			if err := m.Renew(context.Background()); err != nil {
				t.Fatal(err)
			}
			fresh := dial(t, addr, "mail.example.test", roots)
			second := fresh.ConnectionState().PeerCertificates[0]
			if second.Equal(first) {
				t.Fatal("a new connection still gets the certificate from before the renewal")
			}
			echo(t, old, "after\n")
			if !old.ConnectionState().PeerCertificates[0].Equal(first) {
				t.Fatal("the open connection's certificate changed")
			}

			// The cache: private, and the next Manager serves it at once.
			for _, dir := range []string{filepath.Join(data, "acme")} {
				filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
					if err != nil {
						t.Fatal(err)
					}
					want := os.FileMode(0o600)
					if fi.IsDir() {
						want = 0o700
					}
					if fi.Mode().Perm() != want {
						t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
					}
					return nil
				})
			}
			next, err := certs.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			if in := next.Info(); in.Source != certs.SourceACME || !in.Leaf.Equal(second) {
				t.Fatalf("cached: %+v", in)
			}
			if in, err := certs.Inspect(opts); err != nil || !bytes.Equal(in.Leaf.Raw, second.Raw) {
				t.Fatalf("Inspect: %+v %v", in, err)
			}
		})
	}
}

// TestACMEUnreachable: a CA that cannot be reached leaves the self-signed
// certificate in service and says why.
func TestACMEUnreachable(t *testing.T) {
	data := t.TempDir()
	m, err := certs.New(certs.Options{
		SelfSignedDir: filepath.Join(data, "tls"),
		ACME: &certs.ACMEOptions{Directory: "https://127.0.0.1:" + strconv.Itoa(pebbletest.FreePort(t)) + "/dir",
			Names: []string{"mail.example.test"}, CacheDir: filepath.Join(data, "acme"), Challenges: []string{certs.HTTP01}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Renew(context.Background()); err == nil {
		t.Fatal("Renew worked without a CA")
	}
	if in := m.Info(); in.Source != certs.SourceSelfSigned || in.Problem == "" {
		t.Fatalf("info: %+v", in)
	}
}

// TestChallengeListenersAnswerOnlyChallenges: the HTTP-01 listener
// answers 404 to anything but a provisioned challenge, the TLS-ALPN-01
// listener refuses every handshake that is not an acme-tls/1 challenge.
func TestChallengeListenersAnswerOnlyChallenges(t *testing.T) {
	data := t.TempDir()
	m, err := certs.New(certs.Options{
		SelfSignedDir: filepath.Join(data, "tls"),
		ACME: &certs.ACMEOptions{Names: []string{"mail.example.test"}, CacheDir: filepath.Join(data, "acme"),
			Challenges: []string{certs.HTTP01, certs.TLSALPN01}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var lns []net.Listener
	for _, serve := range []func(net.Listener) error{m.ServeHTTP01, m.ServeTLSALPN01} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() { defer wg.Done(); serve(ln) }()
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}()
	for _, path := range []string{"/", "/.well-known/acme-challenge/unknown-token"} {
		resp, err := http.Get("http://" + lns[0].Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	for _, protos := range [][]string{nil, {"acme-tls/1"}} {
		c, err := tls.Dial("tcp", lns[1].Addr().String(), &tls.Config{ServerName: "mail.example.test", NextProtos: protos, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Errorf("handshake with ALPN %v succeeded", protos)
		}
	}
}
