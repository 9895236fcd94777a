package certs_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core/certs"
)

func TestInfoSummary(t *testing.T) {
	end := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   certs.Info
		want []string
	}{
		{certs.Info{Source: certs.SourceACME, Names: []string{"mail.example.test", "imap.example.test"}, Issuer: "Pebble Intermediate CA",
			NotAfter: end, RenewAt: end.Add(-30 * 24 * time.Hour), Leaf: &x509.Certificate{}},
			[]string{"certificate: acme for mail.example.test, imap.example.test", "issued by Pebble Intermediate CA", "valid until 2027-03-0", "renewed from 2027-01-30"}},
		{certs.Info{Source: certs.SourceSelfSigned, Wanted: certs.SourceACME, Problem: errors.New("acme: no CA").Error()},
			[]string{"certificate: self-signed (until the first acme certificate); problem: acme: no CA"}},
	} {
		got := "certificate: " + c.in.Summary()
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
	}
}
