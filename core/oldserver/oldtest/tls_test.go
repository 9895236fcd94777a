package oldtest_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
)

// pinnedTLS trusts exactly the certificate with the given SHA-256.
func pinnedTLS(fp string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != fp {
				return errors.New("certificate fingerprint mismatch")
			}
			return nil
		},
	}
}
