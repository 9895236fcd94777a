// Package demo runs an embedded, in-memory "old mail server" (IMAP + SMTP +
// a read-only POP3, see pop3.go)
// on the loopback interface, so that the whole Mailferry assistant can run end
// to end on a machine that has no real old server.
//
// From the outside the demo behaves like a real old server: Mailferry's
// migration engine talks to it only over IMAP (RFC 3501/9051, go-imap v2's
// imapserver with its in-memory backend imapmemserver, in the copy
// internal/memserver that keeps the case of flags) and SMTP (RFC 5321,
// go-smtp) on 127.0.0.1.
//
// Invariants:
//
//   - Everything listens on a loopback address only; Start refuses any other
//     address.
//   - A message is served over IMAP with exactly the bytes it was stored with.
//     Mail received over SMTP is stored as the exact DATA bytes with one
//     Received: header (RFC 5321 section 4.4) prepended, nothing else changed.
//   - SMTP accepts mail without AUTH from loopback clients. A recipient of the
//     demo domain that is a demo user gets the message in its INBOX; any other
//     recipient of the demo domain is refused with 550 5.1.1; a recipient of any
//     other domain is delivered to the catch-all user (like the shared reference
//     server, which rewrites other domains to catchall), once per message.
//   - The hierarchy separator is "/" (or "." with Options.Delimiter); mailbox names are stored as UTF-8 and are
//     modified UTF-7 on the wire unless the client enabled UTF8=ACCEPT.
//   - Seed data and Samples are built deterministically from their inputs,
//     except each Sample's Message-ID, which is unique on every call.
//   - Every goroutine the package starts has an owner (the Server), watches the
//     Server's context and recovers panics with a logged stack; Close stops the
//     listeners, closes every connection and waits for all of it to end.
//
// The IMAP side inherits the limits of imapmemserver; see the README.md of
// this package for the gaps a migration engine must expect (UIDVALIDITY values,
// keyword case, no \Recent, ...).
package demo
