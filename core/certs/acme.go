package certs

// ACME (RFC 8555) issuance and renewal, and the two challenge listeners:
// HTTP-01 (RFC 8555 section 8.3) and TLS-ALPN-01 (RFC 8737).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"mailferry/core/internal/privfile"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// LetsEncrypt is the default ACME directory: Let's Encrypt's production CA.
const LetsEncrypt = acme.LetsEncryptURL

// Challenge types (ACMEOptions.Challenges).
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
)

// Files of the ACME cache, under ACMEOptions.CacheDir/<directory>/.
const (
	accountKeyName = "account.key"
	certName       = "certificate.pem" // the chain, then its key
)

// Renewal retries after a failure, doubling from retryMin to retryMax.
const (
	retryMin = time.Minute
	retryMax = time.Hour
)

// ACMEOptions configure certificates from an ACME CA.
type ACMEOptions struct {
	// Email is the account's contact (the CA writes about problems).
	Email string
	// Directory is the CA's directory URL; default LetsEncrypt.
	Directory string
	// DirectoryCA names a PEM file of CA certificates trusted for the
	// directory's HTTPS besides the system's (a private CA; Pebble).
	DirectoryCA string
	// Names are the host names (or IP addresses) clients use; the
	// certificate covers them all. At least one.
	Names []string
	// CacheDir holds the account key and the certificate, one
	// subdirectory per Directory; made 0700, files 0600.
	CacheDir string
	// Challenges are the challenge types answered, in order of preference
	// (HTTP01 when ServeHTTP01 serves, TLSALPN01 when ServeTLSALPN01 does).
	Challenges []string
}

func (o ACMEOptions) directory() string {
	if o.Directory == "" {
		return LetsEncrypt
	}
	return o.Directory
}

// dir is the cache directory of o's CA: the directory URL made a file
// name ("acme-v02.api.letsencrypt.org-directory").
func (o ACMEOptions) dir() string {
	name := o.directory()
	if u, err := url.Parse(name); err == nil && u.Host != "" {
		name = u.Host + u.Path
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, strings.Trim(name, "/"))
	return filepath.Join(o.CacheDir, name)
}

// renewAt is when a certificate is renewed: two thirds into its life (30
// days before the end of a 90-day certificate), as the CAs advise.
func (o ACMEOptions) renewAt(leaf *x509.Certificate) time.Time {
	if leaf == nil {
		return time.Time{}
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

// covers says whether leaf is valid now for every one of names.
func covers(leaf *x509.Certificate, names []string) error {
	if leaf == nil {
		return errors.New("no certificate")
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return fmt.Errorf("the certificate expired on %s", leaf.NotAfter.Format(time.RFC3339))
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return fmt.Errorf("the certificate does not cover %s: %w", n, err)
		}
	}
	return nil
}

// acmeManager is the ACME side of a Manager.
type acmeManager struct {
	m    *Manager
	o    ACMEOptions
	dir  string
	http *http.Client

	obtainMu    sync.Mutex // one order at a time
	client      *acme.Client
	lastSuccess time.Time     // guarded by obtainMu
	kick        chan struct{} // wakes Run after a renewal from outside

	chMu       sync.Mutex
	httpTokens map[string]string           // path -> key authorization
	alpnCerts  map[string]*tls.Certificate // name -> challenge certificate
}

func newACME(m *Manager, o ACMEOptions) (*acmeManager, error) {
	if len(o.Names) == 0 {
		return nil, errors.New("acme: no names to get a certificate for")
	}
	if len(o.Challenges) == 0 {
		return nil, errors.New("acme: no challenge listener (HTTP-01 or TLS-ALPN-01)")
	}
	a := &acmeManager{m: m, o: o, dir: o.dir(), kick: make(chan struct{}, 1),
		httpTokens: map[string]string{}, alpnCerts: map[string]*tls.Certificate{}}
	a.http = &http.Client{Timeout: time.Minute}
	if o.DirectoryCA != "" {
		pemData, err := os.ReadFile(o.DirectoryCA)
		if err != nil {
			return nil, fmt.Errorf("acme_directory_ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("acme_directory_ca %s: no PEM certificate in it", o.DirectoryCA)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		a.http.Transport = tr
	}
	return a, nil
}

// loadCached reads the cached certificate; an error wrapping
// os.ErrNotExist means there is none.
func (a *acmeManager) loadCached() (*tls.Certificate, *x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(a.dir, certName))
	if err != nil {
		return nil, nil, fmt.Errorf("acme cache: %w", err)
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, nil, fmt.Errorf("acme cache %s: %w", a.dir, err)
	}
	if err := covers(cert.Leaf, a.o.Names); err != nil {
		return nil, nil, fmt.Errorf("acme cache %s: %w", a.dir, err)
	}
	return &cert, cert.Leaf, nil
}

// renewAt is when the certificate in service is renewed; zero (now) when
// it is not an ACME certificate for the names configured.
func (a *acmeManager) renewAt(leaf *x509.Certificate) time.Time {
	if covers(leaf, a.o.Names) != nil {
		return time.Time{}
	}
	return a.o.renewAt(leaf)
}

// due is when Run next asks for a certificate.
func (a *acmeManager) due() time.Time {
	s := a.m.cur.Load()
	if s.info.Source != SourceACME {
		return time.Time{}
	}
	return a.renewAt(s.info.Leaf)
}

// Run gets the first ACME certificate and renews it when due, until ctx
// ends; a failure is retried with backoff while the certificate in
// service stays. Without ACME it just waits for ctx.
func (m *Manager) Run(ctx context.Context) error {
	a := m.acme
	if a == nil {
		<-ctx.Done()
		return nil
	}
	retry := retryMin
	for {
		wait := time.Until(a.due())
		a.obtainMu.Lock()
		if last := a.lastSuccess; !last.IsZero() {
			wait = max(wait, time.Until(last.Add(retryMin))) // never a renewal loop
		}
		a.obtainMu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-a.kick:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		err := m.Renew(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			retry = retryMin
			continue
		}
		m.log.Error("ACME: no new certificate; the one in service stays", "retry_in", retry, "err", err)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.kick:
			t.Stop()
		case <-t.C:
		}
		retry = min(2*retry, retryMax)
	}
}

// Renew gets a new ACME certificate now and puts it in service for new
// handshakes; connections already open keep theirs. On error the
// certificate in service stays and Info().Problem says why.
func (m *Manager) Renew(ctx context.Context) error {
	a := m.acme
	if a == nil {
		return errors.New("certificates do not come from ACME (acme_email is not set)")
	}
	a.obtainMu.Lock()
	defer a.obtainMu.Unlock()
	cert, err := a.obtain(ctx)
	m.setProblem(err)
	if err != nil {
		return err
	}
	a.lastSuccess = time.Now()
	m.install(cert, describe(SourceACME, cert.Leaf))
	m.log.Info("ACME certificate in service", "names", cert.Leaf.DNSNames, "issuer", cert.Leaf.Issuer.CommonName,
		"not_after", cert.Leaf.NotAfter)
	select {
	case a.kick <- struct{}{}:
	default:
	}
	return nil
}

// acmeClient returns the registered client, registering the account (its
// key made and cached) on first use.
func (a *acmeManager) acmeClient(ctx context.Context) (*acme.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	key, err := a.accountKey()
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key, DirectoryURL: a.o.directory(), HTTPClient: a.http, UserAgent: "mailferry"}
	acct := &acme.Account{}
	if a.o.Email != "" {
		acct.Contact = []string{"mailto:" + a.o.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: register an account at %s: %w", a.o.directory(), err)
	}
	a.client = c
	return c, nil
}

// accountKey loads the account key, making it on first use.
func (a *acmeManager) accountKey() (crypto.Signer, error) {
	path := filepath.Join(a.dir, accountKeyName)
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("acme account key %s: not PEM", path)
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acme account key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	if err := privfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	return k, nil
}

// identifiers are the order's identifiers for names.
func identifiers(names []string) []acme.AuthzID {
	var ids []acme.AuthzID
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ids = append(ids, acme.IPIDs(n)...)
		} else {
			ids = append(ids, acme.DomainIDs(n)...)
		}
	}
	return ids
}

// obtain runs one order (RFC 8555 section 7.4) for every name, saves the
// certificate in the cache and returns it.
func (a *acmeManager) obtain(ctx context.Context) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	client, err := a.acmeClient(ctx)
	if err != nil {
		return nil, err
	}
	order, err := client.AuthorizeOrder(ctx, identifiers(a.o.Names))
	if err != nil {
		return nil, fmt.Errorf("acme: new order for %s: %w", strings.Join(a.o.Names, ", "), err)
	}
	for _, u := range order.AuthzURLs {
		if err := a.authorize(ctx, client, u); err != nil {
			return nil, err
		}
	}
	uri := order.URI
	if order, err = client.WaitOrder(ctx, uri); err != nil {
		return nil, fmt.Errorf("acme: order %s: %w", uri, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate key: %w", err)
	}
	req := &x509.CertificateRequest{}
	for _, n := range a.o.Names {
		if ip := net.ParseIP(n); ip != nil {
			req.IPAddresses = append(req.IPAddresses, ip)
		} else {
			req.DNSNames = append(req.DNSNames, n)
		}
	}
	if len(req.DNSNames) > 0 {
		req.Subject = pkix.Name{CommonName: req.DNSNames[0]}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, req, key)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate request: %w", err)
	}
	chain, _, err := client.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: finalize order %s: %w", order.URI, err)
	}
	var pemData []byte
	for _, der := range chain {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate key: %w", err)
	}
	pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	cert, err := tls.X509KeyPair(pemData, pemData)
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if err := covers(cert.Leaf, a.o.Names); err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if err := privfile.Write(filepath.Join(a.dir, certName), pemData); err != nil {
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	return &cert, nil
}

// authorize answers one authorization's challenge, of the first type of
// ACMEOptions.Challenges the CA offers, and waits for the CA's verdict.
func (a *acmeManager) authorize(ctx context.Context, client *acme.Client, authzURL string) error {
	z, err := client.GetAuthorization(ctx, authzURL)
	if err != nil {
		return fmt.Errorf("acme: authorization %s: %w", authzURL, err)
	}
	switch z.Status {
	case acme.StatusValid:
		return nil // still valid from an earlier order
	case acme.StatusPending:
	default:
		return fmt.Errorf("acme: authorization for %s is %s", z.Identifier.Value, z.Status)
	}
	var chal *acme.Challenge
	for _, typ := range a.o.Challenges {
		i := slices.IndexFunc(z.Challenges, func(c *acme.Challenge) bool { return c.Type == typ })
		if i >= 0 {
			chal = z.Challenges[i]
			break
		}
	}
	if chal == nil {
		var offered []string
		for _, c := range z.Challenges {
			offered = append(offered, c.Type)
		}
		return fmt.Errorf("acme: for %s the CA offers %v, Mailferry answers %v (set acme_http_listen or acme_tls_listen)",
			z.Identifier.Value, offered, a.o.Challenges)
	}
	cleanup, err := a.provision(client, z.Identifier, chal)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acme: %s challenge for %s: %w", chal.Type, z.Identifier.Value, err)
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acme: %s challenge for %s failed (can the CA reach this server on port %s?): %w",
			chal.Type, z.Identifier.Value, map[string]string{HTTP01: "80", TLSALPN01: "443"}[chal.Type], err)
	}
	return nil
}

// provision makes the challenge listeners answer chal until cleanup.
func (a *acmeManager) provision(client *acme.Client, id acme.AuthzID, chal *acme.Challenge) (cleanup func(), err error) {
	a.chMu.Lock()
	defer a.chMu.Unlock()
	switch chal.Type {
	case HTTP01:
		path := client.HTTP01ChallengePath(chal.Token)
		body, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, fmt.Errorf("acme: http-01 response: %w", err)
		}
		a.httpTokens[path] = body
		return func() {
			a.chMu.Lock()
			defer a.chMu.Unlock()
			delete(a.httpTokens, path)
		}, nil
	case TLSALPN01:
		cert, err := client.TLSALPN01ChallengeCert(chal.Token, id.Value)
		if err != nil {
			return nil, fmt.Errorf("acme: tls-alpn-01 certificate: %w", err)
		}
		a.alpnCerts[id.Value] = &cert
		return func() {
			a.chMu.Lock()
			defer a.chMu.Unlock()
			delete(a.alpnCerts, id.Value)
		}, nil
	}
	return nil, fmt.Errorf("acme: challenge type %s is not answered", chal.Type)
}
