// Package relay is Mailferry's SMTP side: an inbound listener (RFC 5321),
// submission listeners (RFC 6409, STARTTLS per RFC 3207 and implicit TLS per
// RFC 8314), local delivery into the store, and a persistent outbound queue
// that hands mail for not-yet-migrated users to the old server's SMTP, and
// mail of local users to the outside world to their domain's outbound route
// (the old server while the domain migrates; after, the recipients' mail
// exchangers or a smarthost); mail from outside for not-yet-migrated users
// is instead forwarded while its sender waits.
//
// A sender is "from outside" when it did not authenticate and its address
// is not in Options.TrustedNetworks. The old servers accept our mail
// without authentication — they trust us — so what reaches them from
// outside is held to the rules below.
//
// The form of a recipient is judged first, before any lookup or callout
// (rcptAddress). go-smtp's parser has already dropped a source route
// ("<@a,@b:user@domain>" is handed over as user@domain, as RFC 5321
// section 3.6.1 says a server SHOULD: only the final mailbox is looked at
// and passed on; the session cannot see the route) and unquoted a quoted
// local part (`"a@b"@c` is handed over as a@b@c). From outside a recipient
// must be an account name by addr.Canonical: one "@", a dot-atom local part
// without "%" or "!" — so a quoted local part is refused unless it says
// the same as a dot-atom — else 501 5.1.3. Every recipient goes on (to the
// store, the callout, the queue, the old server) in canonical form: the
// domain lower-cased, IDNA A-label, no trailing dot; from outside the local
// part lower-cased too, otherwise kept and quoted only where RFC 5321
// needs it.
//
// Routing of a recipient, decided at RCPT time:
//   - an account exists in the store: delivered into its INBOX;
//   - a local domain that is migrating, no account yet: for the domain's
//     old server. From outside, the old server is asked first — MAIL
//     FROM:<>, RCPT TO, RSET (unless Options.NoRecipientCallout) — and only
//     a yes accepts: its permanent refusal is passed on, a question that
//     cannot be asked (old server down or down within the last 30 seconds,
//     TLS failure, the null sender refused, a 4xx or unclear reply) answers
//     451 4.4.x, and a non-ASCII recipient for an old server without
//     SMTPUTF8 gets 553 5.6.7. A yes records the recipient as a known
//     user of the domain (for the readiness check), unless the old server
//     also says yes to a random address of the domain (acceptsAnyone: a
//     catch-all's yes proves no user). From an authenticated user or a
//     trusted network the recipient is queued without a callout;
//   - a local domain that is not migrating, no account: 550 5.1.1;
//   - any other domain: only from an authenticated user or a trusted
//     network, queued for the outbound route of the sender's domain (see
//     below); otherwise 550 5.7.1. The relay is never open. A sender's
//     domain without a route (not local, or routed to an old server it
//     does not have) gets 550 5.7.1 "No outbound route".
//
// Outbound routes (route.go), one per local domain, recorded in the store
// (Store.OutboundRoute) or given by Options.Routes, and read again at each
// delivery attempt (a queued message follows a route changed meanwhile):
//   - oldserver: the domain's old server delivers. The default while the
//     domain migrates.
//   - mx (direct.go, resolve.go): RFC 5321 section 5. The default once the
//     domain does not migrate. MX records by preference (equal ones
//     shuffled), the domain itself when it has none but an address
//     (implicit MX); each host's addresses in turn (at most 5 addresses
//     an attempt), a temporary failure (no connection, 4xx, TLS refused)
//     going on to the next host, a 5xx final for its recipients; this server (Options.Hostname) and
//     the exchangers it is preferred to are skipped, and mail whose best
//     exchanger is this server bounces (5.4.6, a loop). A null MX
//     (RFC 7505) bounces at once
//     (5.1.10), so does a domain without MX or address records (5.1.2);
//     a DNS failure is temporary. STARTTLS is used when offered, whatever
//     the certificate (RFC 7435), with a plain retry if the handshake
//     fails — unless the domain publishes an MTA-STS policy (mtasts.go,
//     RFC 8461): in enforce mode only exchangers the policy lists, only
//     over STARTTLS whose certificate verifies for the exchanger's name
//     (Options.RootCAs), otherwise the attempt fails temporarily; testing
//     mode only logs. Policies are fetched over verified HTTPS from
//     mta-sts.<domain>, without redirects, and cached per domain until
//     max_age — in the store too, so a restart does not forget them —
//     fetched again when the TXT id changes.
//   - smarthost: one server the admin names, TLS starttls (verified),
//     tls (implicit) or none, AUTH PLAIN only under TLS; its password is a
//     Secret, printed and logged as "[redacted]".
//
// Names are looked up with Options.Resolver (NewResolver asks one DNS
// server). A message that leaves by mx or smarthost passes Options.Sign
// (DKIM) once per attempt, in deliverItem: the one point where mail is
// signed.
//
// A transaction from outside is of one kind: local recipients only, or
// recipients of one old server only. A recipient of another kind gets
// 452 4.5.3 (RFC 5321 section 3.3: the client sends it in a new
// transaction). Mail from outside for an old server is not queued: during
// DATA it is forwarded to the old server on a pooled session (a
// before-queue proxy, like Postfix's smtpd_proxy_filter), and the old
// server's answer is ours — its 5xx passed on, any 4xx, network failure or
// recipient refused at that moment answered 451 4.4.x (the refusal is
// remembered for the RCPT of the same sender's retry only: it may be
// about the sender, which the callout's null sender never meets). We say
// 250 only after the old server said 250.
//
// Size (RFC 1870): each old server's SIZE is learned from the EHLO reply
// of our sessions to it (callout, forward, queue) and trusted for an hour.
// A recipient for an old server whose SIZE is known is refused with
// 552 5.3.4 at RCPT when MAIL FROM's SIZE= (with 1 KiB for our Received
// header) exceeds it, and the message at DATA when it does. EHLO
// advertises, and go-smtp holds the connection's MAIL SIZE= and DATA to,
// the smaller of Options.MaxMessageBytes and the smallest SIZE any old
// server announced within the hour less 1 KiB, as it stood when the
// connection was accepted (go-smtp reads the limit from its Server without
// a lock, so each connection gets its own Server). The limit is per
// server, not per recipient: while a smaller old server is known, local
// recipients are held to it too.
//
// Invariants:
//   - Accepted means committed: the 250 reply to DATA is sent only after the
//     local copies and the queued relay items of the message were written in
//     one store transaction, or, for mail from outside forwarded to an old
//     server, after that server's 250. A message is never half accepted.
//   - Message bytes are kept exactly as received, with one Received header
//     (RFC 5321 section 4.4) prepended — and, for mail from outside
//     delivered here, one Authentication-Results header (RFC 8601,
//     Options.AuthResults) above it, the message's own such fields that
//     claim our authserv-id renamed X-Untrusted-Authentication-Results
//     (RFC 8601 section 5, authresults.go; in all other mail too, which
//     gets no field of ours: forwarded or queued to an old server, it
//     comes back with its user's mailbox, and an authenticated user or a
//     trusted network must not pass a verdict off as ours); nothing else
//     is changed for local delivery. What leaves over SMTP (forwarded, queued, signed)
//     has a bare <LF> sent as <CR><LF> and a stray <CR> as a space
//     (wire.go, as Postfix 3.9 does): a stray <CR> or <LF> is how SMTP
//     smuggling splits a second message off at a server that trusts us
//     (TestSmugglingToOldServer, against the fixture's Postfix).
//   - A queue item leaves the queue (or loses recipients) in the same store
//     transaction that records the outcome — including a bounce to queue —
//     right after the remote server's reply, so a normal stop or restart never
//     sends a message twice; only a crash between the remote 250 and that
//     commit can.
//   - A worker claims a due item in the store before it tries it (its next
//     attempt moves out by a lease of 5 × Options.ClientTimeout, at least a
//     minute), so two workers — even in two processes — never try one item
//     at once; the claim is renewed every third of the lease while the
//     delivery runs (a tarpit or a large DATA may outlast one lease), the
//     recorded outcome replaces the claim, and an item whose process died
//     is tried again when the lease runs out. Only a delivery whose
//     database stayed out of reach for a whole lease can be sent twice.
//     On PostgreSQL
//     (several nodes) claims are timed by the database's clock, so a node
//     whose clock runs ahead takes no item another holds
//     (TestSharedQueuePostgres, store's TestSkewedClocks).
//   - One sender's items (by reverse-path as queued: an authenticated
//     user's is their canonical address) never take every worker of a
//     relay: a sender with half of them under way (at least one) gets no
//     more while other senders' items are due, and none ever more than
//     all but one (of two or more), so mail to servers that are slow or
//     never answer cannot hold up everyone else's (Relay.claim,
//     TestOneSenderCannotTakeEveryWorker).
//   - Mail from outside is never bounced by us after a 250: what we could
//     not deliver is refused in the session (5xx) or deferred (4xx). Only
//     mail from authenticated users and trusted networks is queued for an
//     outbound route, and only it (or a bounce of it) can produce a DSN.
//   - A forwarded message is acknowledged only after the old server's 250
//     to its DATA; a failure after the message was sent is answered 451,
//     so the sender retries: a duplicate is possible, a loss is not.
//   - Temporary failures (4xx, network) of queued mail are retried with
//     exponential backoff; permanent ones (5xx), expiry and the retry limit
//     produce one delivery status notification (RFC 3464) to the sender
//     per outcome, never for a null reverse-path.
//   - AUTH (PLAIN, RFC 4616; LOGIN) is offered and accepted only under TLS;
//     an authenticated user may only use their own address as MAIL FROM,
//     and it goes on in its canonical form. A malformed PLAIN response is
//     answered 501 5.5.2 (saslSyntax), a response that is not base64 454
//     (go-smtp's own answer).
//   - Outbound sessions are reused (a small pool per destination: an old
//     server, an exchanger's address with its TLS requirement, a
//     smarthost); a session the server closed meanwhile is replaced before
//     anything was sent on it. Only old servers' SIZE limits our listeners.
//   - Every goroutine is owned by the Relay, stops with Close or its context,
//     and recovers panics with a logged stack.
package relay
