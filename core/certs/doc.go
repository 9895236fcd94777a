// Package certs owns the TLS certificate every Mailferry listener serves
// (IMAP with STARTTLS, IMAPS, SMTP with STARTTLS, submission, submissions)
// and where it comes from. One Manager, three sources, first match wins:
//
//   - file: Options.CertFile and KeyFile (an admin's own certificate, e.g.
//     from certbot). The files are looked at again (a stat, at most once
//     every FileCheckInterval, on a handshake) and reloaded when they
//     change; a pair that does not load (certbot writes the two files one
//     after the other) leaves the previous certificate in service.
//   - acme: Options.ACME set. Certificates come from an ACME CA (RFC 8555;
//     Let's Encrypt by default) through golang.org/x/crypto/acme, answering
//     the CA's HTTP-01 challenge on a listener of our own (ServeHTTP01; the
//     CA connects to port 80) or its TLS-ALPN-01 challenge (RFC 8737,
//     ServeTLSALPN01; the CA connects to port 443). The account key, the
//     certificate and its key are cached under Options.ACME.CacheDir
//     (directory 0700, files 0600), one subdirectory per CA directory.
//     Until the first certificate is issued the self-signed one is served.
//   - self-signed: no configuration. Made once under Options.SelfSignedDir
//     and kept, so a client that pinned it keeps trusting it.
//
// Invariants:
//   - Listeners take the certificate through tls.Config.GetCertificate
//     (TLSConfig): a renewed or reloaded certificate serves every new
//     handshake at once, and connections already open are never touched.
//   - A failed issuance, renewal or reload never removes the certificate
//     in service; Info.Problem says what went wrong.
//   - The renewal loop (Run) is the only goroutine the Manager starts
//     besides the challenge listeners' connections, and both end with the
//     context or listener their caller owns.
//
// Why not autocert: it always tries TLS-ALPN-01 first (a mail server seldom
// owns port 443, and each failed try counts against the CA's limits),
// refuses handshakes without SNI (mail clients that connect by address),
// obtains a certificate inside a client's handshake, and runs renewal
// timers that can be neither stopped nor driven. The acme package under it
// is the same module, so this costs no dependency.
package certs
