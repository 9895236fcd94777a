// Package pebbletest runs Pebble, the Let's Encrypt test ACME server, on
// loopback for tests: github.com/letsencrypt/pebble/v2 at Version is
// fetched through the Go module proxy (or found in the module cache) and
// built with `go build` into a temporary directory; Go's build cache makes
// every build after the first quick. Pebble really validates the
// challenges: its pebble-challtestsrv answers every DNS name with
// 127.0.0.1, and Pebble connects to Options.HTTPPort (HTTP-01) and
// Options.TLSPort (TLS-ALPN-01) there.
//
// When Pebble cannot be fetched or built (no network, no module cache) the
// test is skipped with the reason, or fails when MAILFERRY_REQUIRE_PEBBLE=1
// (as `make test` sets).
package pebbletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble module version used.
const Version = "v2.10.3"

const module = "github.com/letsencrypt/pebble/v2"

// Options configure a Pebble.
type Options struct {
	// HTTPPort and TLSPort are where Pebble's validation authority
	// connects, on 127.0.0.1, for HTTP-01 and TLS-ALPN-01 challenges
	// (0: a port nobody listens on).
	HTTPPort, TLSPort int
	// ValidityPeriod is the certificates' lifetime; default 90 days.
	ValidityPeriod time.Duration
}

// Pebble is a running Pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// DirectoryCA is a PEM file of the CA of Directory's HTTPS certificate
	// (Pebble's test minica).
	DirectoryCA string
	// Management is the address of Pebble's management interface.
	Management string
	client     *http.Client
}

// given holds the ports FreePort handed out in this process: a port
// nobody has bound yet (a test's HTTP-01 port, bound once the server
// starts) must not be handed out again meanwhile (it was, to
// pebble-challtestsrv's management server, and the test failed).
var given struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a loopback TCP port nothing listens on now and that
// FreePort never returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	if given.ports == nil {
		given.ports = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
	t.Fatal("pebbletest: no loopback port that was not handed out already")
	return 0
}

// unavailable skips the test (or fails it when Pebble is required).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("Pebble (%s@%s) cannot be had: ", module, Version) + fmt.Sprintf(format, args...)
	if os.Getenv("MAILFERRY_REQUIRE_PEBBLE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set MAILFERRY_REQUIRE_PEBBLE=1 to make this an error)")
}

var download struct {
	once sync.Once
	dir  string // the module's directory in the module cache
	err  error
}

// binaries fetches Pebble's module once per test process and builds
// pebble and pebble-challtestsrv into a directory of the test (quick
// after the first time: Go's build cache).
func binaries(t testing.TB) (modDir, binDir string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		unavailable(t, "no go command: %v", err)
	}
	download.once.Do(func() {
		cmd := exec.Command(goBin, "mod", "download", "-json", module+"@"+Version)
		cmd.Dir = os.TempDir() // outside any module: go.mod is not touched
		out, err := cmd.Output()
		if err != nil {
			download.err = fmt.Errorf("go mod download: %w: %s", err, out)
			return
		}
		var j struct{ Dir, Error string }
		if err := json.Unmarshal(out, &j); err != nil || j.Dir == "" {
			download.err = fmt.Errorf("go mod download: %s %s", j.Error, out)
			return
		}
		download.dir = j.Dir
	})
	if download.err != nil {
		unavailable(t, "%v", download.err)
	}
	binDir = t.TempDir()
	for _, c := range []string{"pebble", "pebble-challtestsrv"} {
		cmd := exec.Command(goBin, "build", "-mod=mod", "-o", filepath.Join(binDir, c), "./cmd/"+c)
		cmd.Dir = download.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable(t, "go build %s: %v: %s", c, err, out)
		}
	}
	return download.dir, binDir
}

// Start runs Pebble and its DNS server on loopback until the test ends.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	modDir, binDir := binaries(t)
	dir := t.TempDir()
	if opts.ValidityPeriod == 0 {
		opts.ValidityPeriod = 90 * 24 * time.Hour
	}
	if opts.HTTPPort == 0 {
		opts.HTTPPort = FreePort(t)
	}
	if opts.TLSPort == 0 {
		opts.TLSPort = FreePort(t)
	}
	listen := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	mgmt := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	dns := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(modDir, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(modDir, "test/certs/localhost/key.pem"),
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        opts.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "Mailferry test", "validityPeriod": int64(opts.ValidityPeriod / time.Second)}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	spawn(t, dir, filepath.Join(binDir, "pebble-challtestsrv"), nil,
		"-dnsserver", dns, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-management", "127.0.0.1:"+strconv.Itoa(FreePort(t)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitTCP(t, dns)
	spawn(t, dir, filepath.Join(binDir, "pebble"),
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", cfgFile, "-dnsserver", dns, "-strict")
	waitTCP(t, listen)
	waitTCP(t, mgmt)

	p := &Pebble{
		Directory:   "https://" + listen + "/dir",
		DirectoryCA: filepath.Join(modDir, "test/certs/pebble.minica.pem"),
		Management:  mgmt,
	}
	caPEM, err := os.ReadFile(p.DirectoryCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p.client = &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return p
}

// Roots returns Pebble's issuing root (from the management interface's
// /roots/0): a client that trusts it verifies what Pebble issued.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get("https://" + p.Management + "/roots/0")
	if err != nil {
		t.Fatalf("pebble roots: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble roots: %s %v", resp.Status, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("pebble roots: not PEM: %q", b)
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("pebble roots: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

// spawn runs a program until the test ends; its output is logged when
// the test fails.
func spawn(t testing.TB, dir, bin string, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		unavailable(t, "start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("=== %s ===\n%s", filepath.Base(bin), strings.TrimSpace(out.String()))
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
