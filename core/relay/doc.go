// Package relay is Mailferry's SMTP side: an inbound listener (RFC 5321),
// submission listeners (RFC 6409, STARTTLS per RFC 3207 and implicit TLS per
// RFC 8314), local delivery into the store, and a persistent outbound queue
// that hands mail for not-yet-migrated users (and mail of migrated users to
// the outside world) to the old server's SMTP.
//
// Routing of a recipient, decided at RCPT time:
//   - an account exists in the store: delivered into its INBOX;
//   - a local domain that is migrating, no account yet: queued for the
//     domain's old server (for a sender that did not authenticate, the old
//     server is asked first — MAIL FROM:<>, RCPT TO, RSET — and a permanent
//     refusal is passed on at once, so mail to a wrong address is refused,
//     not bounced to a possibly forged sender);
//   - a local domain that is not migrating, no account: 550 5.1.1;
//   - any other domain: only from an authenticated user or a trusted
//     network, queued for the old server of the sender's domain (which
//     performs the final delivery); otherwise 550 5.7.1. The relay is never
//     open.
//
// Invariants:
//   - Accepted means committed: the 250 reply to DATA is sent only after the
//     local copies and the queued relay items of the message were written in
//     one store transaction. A message is never half accepted.
//   - Message bytes are kept exactly as received, with one Received header
//     (RFC 5321 section 4.4) prepended; nothing else is changed, neither for
//     local delivery nor for relaying.
//   - A queue item leaves the queue (or loses recipients) in the same store
//     transaction that records the outcome — including a bounce to queue —
//     right after the remote server's reply, so a normal stop or restart never
//     sends a message twice; only a crash between the remote 250 and that
//     commit can.
//   - A worker claims a due item in the store before it tries it (its next
//     attempt moves out by a lease of 5 × Options.ClientTimeout, at least a
//     minute), so two workers — even in two processes — never try one item
//     at once; the recorded outcome replaces the claim, and an item whose
//     process died is tried again when the lease runs out.
//   - Temporary failures (4xx, network) are retried with exponential backoff;
//     permanent ones (5xx), expiry and the retry limit produce one delivery
//     status notification (RFC 3464) to the sender per outcome, never for a
//     null reverse-path.
//   - AUTH (PLAIN, RFC 4616; LOGIN) is offered and accepted only under TLS;
//     an authenticated user may only use their own address as MAIL FROM.
//   - Outbound sessions to an old server are reused (a small pool per
//     server); a session the server closed meanwhile is replaced before
//     anything was sent on it.
//   - Every goroutine is owned by the Relay, stops with Close or its context,
//     and recovers panics with a logged stack.
package relay
