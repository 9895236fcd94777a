package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sources of a certificate (Info.Source).
const (
	SourceACME       = "acme"
	SourceFile       = "file"
	SourceSelfSigned = "self-signed"
)

// FileCheckInterval is how often, at most, the files of Options.CertFile
// and KeyFile are looked at again (on a handshake) for a new certificate.
const FileCheckInterval = time.Second

// Options say where the certificate comes from. Exactly one of CertFile
// (with KeyFile) and ACME is used, CertFile first; with neither the
// self-signed certificate is served.
type Options struct {
	// CertFile and KeyFile name a PEM certificate chain and its key.
	CertFile, KeyFile string
	// ACME, when set, gets the certificate from an ACME CA.
	ACME *ACMEOptions
	// SelfSignedDir holds the self-signed certificate (cert.pem, key.pem),
	// made on first use for SelfSignedHosts.
	SelfSignedDir   string
	SelfSignedHosts []string
	// Logger receives the Manager's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Info describes the certificate in service, for `mailferry status` and
// the assistant.
type Info struct {
	// Source is SourceACME, SourceFile or SourceSelfSigned.
	Source string `json:"source"`
	// Subject is the subject's common name; Names the DNS names and IP
	// addresses the certificate is valid for.
	Subject string   `json:"subject"`
	Names   []string `json:"names"`
	// Issuer is the issuer's common name (or its whole name).
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// RenewAt is when an ACME certificate is renewed (zero otherwise).
	RenewAt time.Time `json:"renew_at,omitzero"`
	// Wanted is the source configured when it differs from Source: ACME
	// configured while the self-signed certificate is served until the
	// first issuance.
	Wanted string `json:"wanted,omitempty"`
	// Problem is the latest failed issuance, renewal or reload, "" when
	// the latest attempt worked.
	Problem string `json:"problem,omitempty"`
	// Leaf is the certificate itself (VerifyHostname, ...).
	Leaf *x509.Certificate `json:"-"`
	// Intermediates are the other certificates served with Leaf (its
	// chain, as the files or the CA gave it), for verifying Leaf.
	Intermediates []*x509.Certificate `json:"-"`
}

// chainOf parses the certificates served after the leaf; one that does not
// parse is left out (verifying then fails, as it would for a client).
func chainOf(cert *tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range cert.Certificate[min(1, len(cert.Certificate)):] {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// describe fills Info's certificate fields from leaf.
func describe(source string, leaf *x509.Certificate) Info {
	in := Info{Source: source, Leaf: leaf}
	if leaf == nil {
		return in
	}
	in.Subject = leaf.Subject.CommonName
	in.Names = append(in.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		in.Names = append(in.Names, ip.String())
	}
	in.Issuer = leaf.Issuer.CommonName
	if in.Issuer == "" {
		in.Issuer = leaf.Issuer.String()
	}
	in.NotBefore, in.NotAfter = leaf.NotBefore, leaf.NotAfter
	return in
}

// served is the certificate in service and what is known of it.
type served struct {
	cert *tls.Certificate
	info Info
}

// Manager serves the certificate of Options and keeps it current. Its
// methods are safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[served]

	// file source
	fileMu    sync.Mutex
	fileStamp string       // stat of both files at the last load
	nextCheck atomic.Int64 // unix nanoseconds of the next stat

	acme *acmeManager // nil unless Options.ACME

	problemMu sync.Mutex
	problem   string
}

// New loads the certificate to serve first: the files, else a cached ACME
// certificate, else the self-signed one (made on first use). An error
// means no certificate can be served.
func New(opts Options) (*Manager, error) {
	m := &Manager{opts: opts, log: opts.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	if opts.CertFile != "" {
		if err := m.loadFiles(); err != nil {
			return nil, err
		}
		return m, nil
	}
	if opts.ACME != nil {
		a, err := newACME(m, *opts.ACME)
		if err != nil {
			return nil, err
		}
		m.acme = a
		if cert, leaf, err := a.loadCached(); err == nil {
			m.install(cert, describe(SourceACME, leaf))
			return m, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("cached ACME certificate not used", "err", err)
		}
	}
	cert, err := SelfSigned(opts.SelfSignedDir, opts.SelfSignedHosts)
	if err != nil {
		return nil, err
	}
	m.install(cert, describe(SourceSelfSigned, cert.Leaf))
	return m, nil
}

// install puts cert in service for every new handshake.
func (m *Manager) install(cert *tls.Certificate, info Info) {
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	info.Intermediates = chainOf(cert)
	m.cur.Store(&served{cert: cert, info: info})
}

// setProblem records the latest failure ("" after a success).
func (m *Manager) setProblem(err error) {
	m.problemMu.Lock()
	defer m.problemMu.Unlock()
	m.problem = ""
	if err != nil {
		m.problem = err.Error()
	}
}

// Info describes the certificate in service.
func (m *Manager) Info() Info {
	s := m.cur.Load()
	in := s.info
	in.Names = append([]string(nil), in.Names...)
	m.problemMu.Lock()
	in.Problem = m.problem
	m.problemMu.Unlock()
	if m.acme != nil {
		if in.Source != SourceACME {
			in.Wanted = SourceACME
		} else {
			in.RenewAt = m.acme.renewAt(in.Leaf)
		}
	}
	return in
}

// ACME reports whether the certificate comes from an ACME CA (then Run
// must run, and a challenge listener serve).
func (m *Manager) ACME() bool { return m.acme != nil }

// TLSConfig is the configuration every listener uses: the certificate is
// taken at each handshake, so a new one serves new connections at once.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12}
}

// GetCertificate returns the certificate in service (tls.Config), having
// first looked at the certificate files when they are the source and
// FileCheckInterval has passed.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.opts.CertFile != "" && time.Now().UnixNano() >= m.nextCheck.Load() {
		m.checkFiles()
	}
	return m.cur.Load().cert, nil
}

// stamp says when and how the two files last changed.
func stamp(paths ...string) (string, error) {
	var s string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%s:%d:%d;", p, fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// checkFiles reloads the certificate files if they changed since the last
// load; a pair that does not load leaves the certificate in service.
func (m *Manager) checkFiles() {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	if time.Now().UnixNano() < m.nextCheck.Load() {
		return // checked while we waited
	}
	m.nextCheck.Store(time.Now().Add(FileCheckInterval).UnixNano())
	st, err := stamp(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		m.setProblem(fmt.Errorf("certificate files: %w", err))
		return
	}
	if st == m.fileStamp {
		return
	}
	if err := m.loadFilesLocked(st); err != nil {
		m.log.Warn("certificate files changed but do not load; the previous certificate stays in service", "err", err)
		return
	}
	m.log.Info("certificate files reloaded", "cert_file", m.opts.CertFile, "not_after", m.cur.Load().info.NotAfter)
}

// loadFiles loads Options.CertFile and KeyFile and serves them.
func (m *Manager) loadFiles() error {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	m.nextCheck.Store(time.Now().Add(FileCheckInterval).UnixNano())
	st, err := stamp(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	return m.loadFilesLocked(st)
}

func (m *Manager) loadFilesLocked(st string) error {
	cert, err := tls.LoadX509KeyPair(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		err = fmt.Errorf("TLS certificate %s: %w", m.opts.CertFile, err)
		m.setProblem(err)
		return err
	}
	m.fileStamp = st
	m.install(&cert, describe(SourceFile, cert.Leaf))
	m.setProblem(nil)
	return nil
}

// Inspect describes the certificate a Manager of opts would serve, read
// from disk without making or fetching anything: for a process that does
// not serve (`mailferry status` beside a running `mailferry serve`).
func Inspect(opts Options) (Info, error) {
	load := func(source, certFile, keyFile string) (Info, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return Info{Source: source}, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
		in := describe(source, cert.Leaf)
		in.Intermediates = chainOf(&cert)
		return in, nil
	}
	if opts.CertFile != "" {
		return load(SourceFile, opts.CertFile, opts.KeyFile)
	}
	if opts.ACME != nil {
		file := filepath.Join(opts.ACME.dir(), certName)
		in, err := load(SourceACME, file, file)
		if err == nil {
			in.RenewAt = opts.ACME.renewAt(in.Leaf)
			return in, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return in, err
		}
	}
	in, err := load(SourceSelfSigned, filepath.Join(opts.SelfSignedDir, "cert.pem"), filepath.Join(opts.SelfSignedDir, "key.pem"))
	if opts.ACME != nil {
		in.Wanted = SourceACME
	}
	return in, err
}

// Summary sums the certificate up in one line for an admin: its source,
// names, issuer and end, when it is renewed, and any problem.
func (i Info) Summary() string {
	s := i.Source
	if i.Leaf != nil {
		s += fmt.Sprintf(" for %s, issued by %s, valid until %s", strings.Join(i.Names, ", "), i.Issuer,
			i.NotAfter.Local().Format("2006-01-02 15:04"))
	}
	if !i.RenewAt.IsZero() {
		s += ", renewed from " + i.RenewAt.Local().Format("2006-01-02 15:04")
	}
	if i.Wanted != "" {
		s += " (until the first " + i.Wanted + " certificate)"
	}
	if i.Problem != "" {
		s += "; problem: " + i.Problem
	}
	return s
}
