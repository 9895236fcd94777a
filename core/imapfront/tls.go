package imapfront

import (
	"crypto/tls"

	"mailferry/core/certs"
)

// SelfSignedTLS returns a TLS configuration with the certificate in
// dir/cert.pem and its key in dir/key.pem. When neither file exists it makes
// a self-signed ECDSA certificate for hosts (names or IP addresses; none
// means "localhost"), valid ten years, and saves it there (key mode 0600)
// so that clients that pinned it keep trusting it after a restart. See
// certs.SelfSigned.
func SelfSignedTLS(dir string, hosts []string) (*tls.Config, error) {
	cert, err := certs.SelfSigned(dir, hosts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}, nil
}
