// Package oldserver knows an old mail server's address and how to talk to it:
// host name or address literal, IMAP and SMTP ports, TLS mode, certificate
// trust, the form of the login name, and a capability probe that explains
// what it found in plain words.
//
// Protocols: IMAP4rev1/IMAP4rev2 (RFC 3501, RFC 9051) through the go-imap v2
// client, STARTTLS for IMAP (RFC 9051 §6.2.1) and SMTP (RFC 3207), implicit
// TLS (RFC 8314), SASL PLAIN with an authorization identity (RFC 4616) for
// master-user logins, NAMESPACE (RFC 2342), LIST-EXTENDED and SPECIAL-USE
// (RFC 5258, RFC 6154), SMTP (RFC 5321) with SIZE (RFC 1870), 8BITMIME
// (RFC 6152) and SMTPUTF8 (RFC 6531). Host names follow RFC 1123 §2.1 and
// address literals RFC 5321 §4.1.3.
//
// Invariants:
//   - Certificates are always checked: either against the system roots and
//     the host name, or against a pinned SHA-256 fingerprint of the leaf
//     certificate (for self-signed old servers). There is no "skip
//     verification" setting.
//   - Passwords are only passed as arguments; they are never stored in
//     Settings, never logged, and never appear in error text.
//   - Every network operation is bounded by its context and by
//     DialOptions.Timeout: a server that accepts and then stays silent or
//     hangs up yields an error, never a hang. Once connected, a server
//     that stops answering (also in the middle of a message) fails the
//     connection after DialOptions.ReadStall of silence (stall.go).
//   - A wrong user name or password is reported as an error matching
//     ErrAuthFailed (errors.Is); network and TLS failures never match it.
//   - A connection the server turns away before any login (a BYE greeting,
//     a close before the greeting, NO [LIMIT] at login) matches
//     ErrTurnedAway, never ErrAuthFailed.
//   - What was learnt about a server (Learnt: the login form that works,
//     a connection cap, capabilities) only reorders what Settings allow:
//     a bare user name is never sent where Settings would not send it, and
//     facts learnt at another host:port are ignored.
//   - Every failure to use an old server has words for an admin: Explain
//     maps it, by type only (errors.As/Is on *DialError, *ProtocolError,
//     *CertError, ErrAuthFailed, ErrNoStartTLS, net, tls, go-imap and
//     go-smtp errors), to a Problem with a headline, what to do next and
//     the technical detail. A port that answers in another protocol is a
//     *ProtocolError, told by the first bytes it sent.
//   - The package keeps no global state and starts no goroutine that
//     outlives a call, except the go-imap client's own reader.
package oldserver
