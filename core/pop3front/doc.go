// Package pop3front is Mailferry's POP3 server (RFC 1939) over the same
// store as IMAP: a user's maildrop is their INBOX. It speaks USER/PASS,
// STAT, LIST, RETR, DELE, RSET, NOOP, QUIT, TOP and UIDL (RFC 1939), CAPA
// with RESP-CODES and AUTH-RESP-CODE (RFC 2449, RFC 3206), STLS (RFC 2595),
// AUTH PLAIN (RFC 5034, RFC 4616) and implicit TLS on its own port
// (RFC 8314).
//
// Invariants:
//   - Logins go through the one login policy (core/auth): canonical
//     addresses, the same rate limits and failure delay as IMAP, bounded
//     hashing, connections per source bounded (auth.Policy.Listener). An
//     unknown user of a migrating domain is checked at the old server and
//     migrated exactly as an IMAP login is; the login is answered at once.
//     A password is never logged. Without TLS a login is refused unless
//     Options.AllowInsecureAuth is set.
//   - The maildrop is a snapshot: the session numbers the INBOX messages
//     present when the login succeeded (RFC 1939 section 8 lets a server
//     show mail that arrives later, or not; Mailferry does not). Mail that
//     arrives during the session — delivered, or copied by a migration still
//     under way — is seen by the next session. A message another session
//     (IMAP) expunged meanwhile answers -ERR on RETR and TOP and still
//     counts in STAT and LIST with its size of the snapshot.
//   - The snapshot's store reads are cancelled when the client hangs up
//     while it is taken (hangup.go: 100,000 messages take about 400 ms);
//     commands the client sends meanwhile are kept for the session.
//   - Messages are served byte for byte as stored: the only change on the
//     wire is RFC 1939's dot-stuffing of lines that begin with "." and the
//     CRLF before the terminating ".". The octet counts of LIST and STAT
//     are the stored sizes.
//   - DELE only marks: nothing changes before QUIT (the UPDATE state).
//     QUIT removes the marked messages from INBOX in one transaction
//     (store.ExpungeSeen), which a concurrent IMAP session sees as EXPUNGE,
//     and only those still as the snapshot saw them: the same account (not
//     one deleted and made again under the same IDs), INBOX, UIDVALIDITY
//     and bytes. A connection that ends without QUIT removes nothing.
//   - The maildrop is locked while a session holds it (RFC 1939 section 8):
//     a second POP3 login to the same account, on this node or any other
//     on the store, gets "-ERR [IN-USE]" (RFC 2449) and its lock is free
//     again when the first session ends, however it ends. IMAP sessions
//     are not locked out. The lock is a row of the store's
//     (store.LockMaildrop), renewed every third of Options.LockTTL (2
//     minutes) and checked before QUIT removes anything: a node that dies
//     with a session open holds the account for LockTTL at most, and a
//     session whose lock lapsed and was taken ends without removing
//     anything. The row goes with the account: a session of an account
//     deleted and made again under the same ID does not lock the new
//     account, and ends at its next renewal.
//   - A UIDL is stable for the life of the message: the old server's UIDL
//     when the migration read one whose message has the same bytes
//     (the store's blob key), kept in the store; otherwise the
//     INBOX's UIDVALIDITY and the message's UID in hex ("%08x%08x"), with a
//     suffix should that ever equal a kept UIDL of the account, so that
//     new mail never takes a UIDL a client already knows. A UIDL once
//     given stays: while a migrated account's old list is unread, the ones
//     made here are kept (store.PinUIDLs) and a list read later does not
//     replace them.
//   - Hostile input: a command line is at most MaxLine octets (a longer one
//     is answered -ERR and skipped, never buffered whole); arguments are
//     checked before use; after MaxErrors bad commands, or Options.Idle
//     without a command, the connection is closed. No input makes a
//     session panic, and a panic would end only its connection.
package pop3front
