// Package memserver is go-imap's imapmemserver (v2.0.0-beta.8, MIT, see
// LICENSE) with flags kept in their case: a system flag as RFC 9051 spells
// it (\Seen, whatever case the client sent), a keyword as first set, both
// compared without case. Upstream stores every flag lower-cased, so an old
// server built on it answered `\seen` and `work` where Dovecot answers
// `\Seen` and `Work`. server.go (the multi-user Server) is left out; the
// rest is unchanged.
package memserver
