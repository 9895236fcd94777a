package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// challengeTimeout bounds one connection of the CA to a challenge listener.
const challengeTimeout = 10 * time.Second

// ServeHTTP01 answers the CA's HTTP-01 challenges (RFC 8555 section 8.3)
// on ln (the CA connects to port 80) until ln is closed; every other
// request gets 404. It returns the listener's error.
func (m *Manager) ServeHTTP01(ln net.Listener) error {
	if m.acme == nil {
		return errors.New("certs: HTTP-01 listener without ACME")
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(m.acme.serveHTTP),
		ReadHeaderTimeout: challengeTimeout,
		ReadTimeout:       challengeTimeout,
		WriteTimeout:      challengeTimeout,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	err := srv.Serve(ln)
	srv.Close() // ends the connections being answered
	return fmt.Errorf("certs: HTTP-01 listener: %w", err)
}

func (a *acmeManager) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a.chMu.Lock()
	body, ok := a.httpTokens[r.URL.Path]
	a.chMu.Unlock()
	if !ok {
		http.Error(w, "Mailferry answers only ACME challenges here", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(body))
}

// ServeTLSALPN01 answers the CA's TLS-ALPN-01 challenges (RFC 8737) on ln
// (the CA connects to port 443) until ln is closed; any other handshake
// fails. It returns the listener's error once every connection it
// accepted has ended.
func (m *Manager) ServeTLSALPN01(ln net.Listener) error {
	if m.acme == nil {
		return errors.New("certs: TLS-ALPN-01 listener without ACME")
	}
	cfg := &tls.Config{
		NextProtos:     []string{acme.ALPNProto},
		GetCertificate: m.acme.alpnCert,
		MinVersion:     tls.VersionTLS12,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("certs: TLS-ALPN-01 listener: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), challengeTimeout)
			defer cancel()
			c.SetDeadline(time.Now().Add(challengeTimeout))
			tc := tls.Server(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				m.log.Debug("TLS-ALPN-01 handshake", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// alpnCert returns the challenge certificate for a TLS-ALPN-01 handshake.
func (a *acmeManager) alpnCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
		return nil, errors.New("certs: only ACME TLS-ALPN-01 challenges are answered here")
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	a.chMu.Lock()
	defer a.chMu.Unlock()
	if c := a.alpnCerts[name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("certs: no TLS-ALPN-01 challenge for %q", name)
}
