package core

// The certificate every listener serves (core/certs): the configuration
// keys, and what Core says about the certificate in use.
//
//	cert_file, key_file   an admin's own certificate; reloaded when the
//	                      files change; wins over everything else
//	acme_email            turns ACME on (the CA account's contact)
//	acme_directory        the CA; default Let's Encrypt production
//	acme_directory_ca     PEM roots for the directory's HTTPS (private CA)
//	acme_names            the host names clients use; default hostname
//	acme_http_listen      HTTP-01 challenge listener (the CA comes to port
//	                      80); default 0.0.0.0:80 when ACME is on and
//	                      acme_tls_listen is not set
//	acme_tls_listen       TLS-ALPN-01 challenge listener (port 443)
//
// With none of them, the self-signed certificate under <data>/tls.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"mailferry/core/certs"
)

// CertificateInfo describes the certificate the listeners serve: its
// source (CertACME, CertFile, CertSelfSigned), names, issuer, validity,
// next renewal and latest problem.
type CertificateInfo = certs.Info

// Sources of a certificate (CertificateInfo.Source).
const (
	CertACME       = certs.SourceACME
	CertFile       = certs.SourceFile
	CertSelfSigned = certs.SourceSelfSigned
)

// acmeOn says whether the certificate comes from ACME: acme_email is set
// and cert_file (which wins) is not.
func (c Config) acmeOn() bool { return c.ACMEEmail != "" && c.CertFile == "" }

// acmeDefaults fills in the ACME keys (see Defaults): the directory, the
// names, a challenge listener; the challenge listeners are Off unless ACME
// is on.
func (c Config) acmeDefaults() Config {
	c.ACMENames = slices.Clone(c.ACMENames)
	for i, n := range c.ACMENames {
		c.ACMENames[i] = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
	}
	if c.acmeOn() {
		if c.ACMEDirectory == "" {
			c.ACMEDirectory = certs.LetsEncrypt
		}
		if len(c.ACMENames) == 0 {
			c.ACMENames = []string{strings.ToLower(c.Hostname)}
		}
		if c.ACMEHTTPListen == "" && (c.ACMETLSListen == "" || c.ACMETLSListen == Off) {
			c.ACMEHTTPListen = "0.0.0.0:80"
		}
	}
	if c.CertFile != "" {
		// cert_file wins: nothing to answer a CA with.
		c.ACMEHTTPListen, c.ACMETLSListen = Off, Off
	}
	if c.ACMEHTTPListen == "" {
		c.ACMEHTTPListen = Off
	}
	if c.ACMETLSListen == "" {
		c.ACMETLSListen = Off
	}
	return c
}

// validateACME reports what is wrong with the ACME keys.
func (c Config) validateACME() error {
	set := func(s string) bool { return s != "" && s != Off }
	if c.ACMEEmail == "" {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"acme_directory", c.ACMEDirectory != ""}, {"acme_directory_ca", c.ACMEDirectoryCA != ""},
			{"acme_names", len(c.ACMENames) > 0}, {"acme_http_listen", set(c.ACMEHTTPListen)}, {"acme_tls_listen", set(c.ACMETLSListen)},
		} {
			if k.set {
				return fmt.Errorf("%s is set but acme_email is not: set acme_email to get certificates by ACME", k.key)
			}
		}
		return nil
	}
	if !strings.Contains(c.ACMEEmail, "@") {
		return fmt.Errorf("acme_email %q: want an address such as postmaster@example.com", c.ACMEEmail)
	}
	for _, l := range []struct{ key, addr string }{{"acme_http_listen", c.ACMEHTTPListen}, {"acme_tls_listen", c.ACMETLSListen}} {
		if !set(l.addr) {
			continue
		}
		_, p, err := net.SplitHostPort(l.addr)
		if n, perr := strconv.Atoi(p); err != nil || perr != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s %q: want host:port, e.g. 0.0.0.0:80 (or %q)", l.key, l.addr, Off)
		}
	}
	if c.acmeOn() && !set(c.ACMEHTTPListen) && !set(c.ACMETLSListen) {
		return errors.New("ACME needs a challenge listener: set acme_http_listen (e.g. 0.0.0.0:80) or acme_tls_listen (e.g. 0.0.0.0:443)")
	}
	for _, n := range c.ACMENames {
		if net.ParseIP(n) != nil {
			continue
		}
		if n == "" || strings.ContainsAny(n, " /:@*") || !strings.Contains(n, ".") && n != "localhost" {
			return fmt.Errorf("acme_names: %q is not a host name such as mail.example.com", n)
		}
	}
	return nil
}

// certOptions are the certs.Options of the configuration.
func (c *Core) certOptions() certs.Options {
	o := certs.Options{
		CertFile:        c.cfg.CertFile,
		KeyFile:         c.cfg.KeyFile,
		SelfSignedDir:   filepath.Join(c.cfg.DataDir, "tls"),
		SelfSignedHosts: []string{c.cfg.Hostname, "localhost", "127.0.0.1"},
		Logger:          c.log.With("service", "certificates"),
	}
	if c.cfg.acmeOn() {
		var ch []string
		if c.cfg.ACMEHTTPListen != Off {
			ch = append(ch, certs.HTTP01)
		}
		if c.cfg.ACMETLSListen != Off {
			ch = append(ch, certs.TLSALPN01)
		}
		o.ACME = &certs.ACMEOptions{
			Email:       c.cfg.ACMEEmail,
			Directory:   c.cfg.ACMEDirectory,
			DirectoryCA: c.cfg.ACMEDirectoryCA,
			Names:       c.cfg.ACMENames,
			CacheDir:    filepath.Join(c.cfg.DataDir, "acme"),
			Challenges:  ch,
		}
	}
	return o
}

// startCertificates makes the certificate manager (Start) and returns the
// listeners' TLS configuration.
func (c *Core) startCertificates() (*tls.Config, error) {
	if c.cfg.CertFile != "" && c.cfg.ACMEEmail != "" {
		c.log.Warn("cert_file is set: it is served, and acme_email is ignored")
	}
	m, err := certs.New(c.certOptions())
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	c.mu.Lock()
	c.certs = m
	c.mu.Unlock()
	return m.TLSConfig(), nil
}

// Certificate describes the certificate the listeners serve. A Core that
// does not serve (the command line beside a running `mailferry serve`)
// reads what would be served from disk, and makes nothing.
func (c *Core) Certificate() CertificateInfo {
	c.mu.Lock()
	m := c.certs
	c.mu.Unlock()
	if m != nil {
		return m.Info()
	}
	in, err := certs.Inspect(c.certOptions())
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && in.Source == CertSelfSigned:
		in.Problem = "not made yet: Mailferry makes it when it first serves"
	default:
		in.Problem = err.Error()
	}
	return in
}

// RenewCertificate gets a new ACME certificate now; new connections get
// it at once, open ones keep theirs. It fails when the Core does not serve
// or its certificate does not come from ACME; on failure the certificate
// in service stays.
func (c *Core) RenewCertificate(ctx context.Context) error {
	c.mu.Lock()
	m := c.certs
	c.mu.Unlock()
	if m == nil {
		return errors.New("not serving: no certificate to renew")
	}
	return m.Renew(ctx)
}
