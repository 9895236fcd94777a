package oldserver

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// TLSInfo describes the TLS session with an old server and its certificate.
type TLSInfo struct {
	// Version is the protocol version, e.g. "TLS 1.3".
	Version string `json:"version"`
	// CipherSuite is the negotiated cipher suite name.
	CipherSuite string `json:"cipher_suite"`
	// Subject and Issuer of the leaf certificate (RFC 2253 form).
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Names are the DNS names and IP addresses the certificate is for.
	Names []string `json:"names,omitempty"`
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// SHA256 is the fingerprint of the leaf certificate, colon-separated
	// lowercase hex: the value to put in Settings.PinnedSHA256.
	SHA256 string `json:"sha256"`
	// SelfSigned reports whether the certificate is its own issuer.
	SelfSigned bool `json:"self_signed"`
	// Verified reports whether the certificate chains to a trusted root and
	// matches the host name (regardless of any pin).
	Verified bool `json:"verified"`
	// VerifyProblem says in plain words why Verified is false.
	VerifyProblem string `json:"verify_problem,omitempty"`
	// Pinned reports whether a pin was configured and the certificate
	// matched it.
	Pinned bool `json:"pinned"`
	// Trusted reports whether the connection was accepted (Verified, or
	// Pinned when a pin is configured).
	Trusted bool `json:"trusted"`
}

// CertError is returned when the server's certificate is not trusted: it
// neither verifies against the system roots for Host, nor matches the pinned
// fingerprint. It carries what an admin needs to decide whether to pin it.
type CertError struct {
	// Host is the name the certificate was checked against.
	Host string
	// SHA256 is the presented certificate's fingerprint (colon hex).
	SHA256 string
	// Pinned is the configured pin (colon hex), if any.
	Pinned string
	// Subject and Issuer of the presented certificate.
	Subject, Issuer string
	// Problem says in plain words what is wrong.
	Problem string
	// Err is the underlying x509 error, if any.
	Err error
}

// Error implements error.
func (e *CertError) Error() string {
	s := fmt.Sprintf("oldserver: certificate of %s not trusted: %s (its SHA-256 fingerprint is %s)", e.Host, e.Problem, e.SHA256)
	if e.Pinned != "" {
		s += "; pinned: " + e.Pinned
	}
	return s
}

// Unwrap returns the underlying x509 error.
func (e *CertError) Unwrap() error { return e.Err }

// verifier checks a server certificate against the system roots (or
// RootCAs) and the host, or against a pin, and records what it saw.
type verifier struct {
	serverName string
	pin        []byte
	roots      *x509.CertPool

	mu   sync.Mutex
	info *TLSInfo
}

func newVerifier(s Settings, roots *x509.CertPool) (*verifier, error) {
	v := &verifier{serverName: s.Host.ServerName(), roots: roots}
	if s.PinnedSHA256 != "" {
		pin, err := ParseFingerprint(s.PinnedSHA256)
		if err != nil {
			return nil, &SettingsError{Field: "pinned_sha256", Problem: err.Error()}
		}
		v.pin = pin
	}
	return v, nil
}

func (v *verifier) config() *tls.Config {
	return &tls.Config{
		ServerName: v.serverName,
		// Verification is not skipped: VerifyConnection does it, with
		// the system roots and host name, or with the pinned fingerprint.
		InsecureSkipVerify: true,
		VerifyConnection:   v.verify,
	}
}

func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &CertError{Host: v.serverName, Problem: "the server sent no certificate"}
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	info := &TLSInfo{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite),
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		SHA256:      FormatFingerprint(sum[:]),
		SelfSigned:  bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignatureFrom(leaf) == nil,
	}
	info.Names = append(info.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		info.Names = append(info.Names, ip.String())
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{
		DNSName:       v.serverName,
		Roots:         v.roots,
		Intermediates: inter,
	})
	info.Verified = verr == nil
	if verr != nil {
		info.VerifyProblem = explainX509(verr, v.serverName)
	}
	var err error
	if v.pin != nil {
		info.Pinned = bytes.Equal(sum[:], v.pin)
		if !info.Pinned {
			err = &CertError{Host: v.serverName, SHA256: info.SHA256, Pinned: FormatFingerprint(v.pin),
				Subject: info.Subject, Issuer: info.Issuer,
				Problem: "it is not the pinned certificate (the server's certificate changed, or this is another server)"}
		}
	} else if verr != nil {
		err = &CertError{Host: v.serverName, SHA256: info.SHA256, Subject: info.Subject, Issuer: info.Issuer,
			Problem: info.VerifyProblem, Err: verr}
	}
	info.Trusted = err == nil
	v.mu.Lock()
	v.info = info
	v.mu.Unlock()
	return err
}

// seen returns what the last handshake presented, or nil.
func (v *verifier) seen() *TLSInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.info
}

func explainX509(err error, host string) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "it is not signed by an authority this machine trusts (self-signed, or a private CA); pin its fingerprint if you trust it"
	case errors.As(err, &he):
		names := append([]string(nil), he.Certificate.DNSNames...)
		for _, ip := range he.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 && he.Certificate.Subject.CommonName != "" {
			names = []string{he.Certificate.Subject.CommonName}
		}
		return fmt.Sprintf("it is for %s, not for %s", strings.Join(names, ", "), host)
	case errors.As(err, &ci):
		switch ci.Reason {
		case x509.Expired:
			return fmt.Sprintf("it has expired or is not yet valid (valid %s to %s)",
				ci.Cert.NotBefore.Format(time.DateOnly), ci.Cert.NotAfter.Format(time.DateOnly))
		case x509.NotAuthorizedToSign:
			return "an intermediate certificate is not allowed to sign certificates"
		case x509.IncompatibleUsage:
			return "it is not for use by a server"
		}
		return "it is invalid: " + ci.Error()
	}
	return err.Error()
}
