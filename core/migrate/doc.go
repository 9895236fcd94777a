// Package migrate is Mailferry's migration engine: it copies a user's mailbox
// from the old IMAP server (RFC 3501 / RFC 9051, through go-imap v2's
// imapclient) into the store, keeping what a mail client relies on, and keeps
// pulling mail that still lands on the old server while the domain migrates.
//
// Invariants:
//
//   - Nothing is lost, altered or duplicated. Messages are read with
//     BODY.PEEK[] from mailboxes opened with EXAMINE, so the old server never
//     sets \Seen; the exact bytes are stored with their flags and keywords
//     (case kept, \Recent dropped), their INTERNALDATE with its zone and
//     their old UID. A copied mailbox keeps the old UIDVALIDITY.
//   - Every batch of messages commits in one short store transaction
//     together with the highest old UID copied (store.Tx.SetMailboxMigration),
//     so a crash, a kill -9 or a cut connection resumes right after the last
//     committed UID: no duplicates, no gaps. Within a mailbox messages are
//     committed in ascending UID order by one connection; connections work on
//     different mailboxes. A batch's transaction that the database rolls
//     back as a conflict with another node's (store.ErrConflict) is run
//     again in place, a few times with jittered waits (commit.go), not
//     fetched again; a batch of a resumed copy is one AppendMany too, so
//     its blob rows are taken in key order like every batch's.
//   - INBOX is copied first and alone; the other mailboxes follow on up to
//     Options.ConnsPerAccount connections, several accounts at once: as
//     many as the old server's connection cap has places (or
//     Options.Accounts). A job waits for its first place before it counts
//     as running (Engine.firstPlace), so waiting accounts stay pending. A first copy starts on INBOX at once, on the
//     connection the login that created the account opened; a second
//     connection lists the other mailboxes meanwhile. An account's job
//     asked to run again runs once more only if its run had begun (a run
//     reads the old server after it begins): a first login's own
//     LoggedIn does not make its copy run twice.
//   - First logins come before copies: while a first login waits for the
//     old server's answer, copy work (a copy's next FETCH or mailbox, a
//     job's start, an extra connection, a background password hash)
//     waits, so that a burst of first logins is answered at the old
//     server's own pace (logingate.go), but for one copy at a time (the
//     pass), the earliest job in turn holding a place under the cap: the
//     first user of a burst to log in sees mail arriving while the
//     others' logins are answered. A job's turn is when it was scheduled
//     (turn.go); places under the cap go by turn too, and so do the
//     accounts' downloads in a bulk run: of the accounts copied at once, two
//     at a time fetch their messages (Options.Streams, streams.go; not
//     on-login copies), INBOXes first,
//     so that accounts finish one after another, not together in waves. The hold is bounded
//     (Options.LoginHold, 10 s): under a steady stream of logins copies
//     go on beside them once a hold has lasted that long, and a new hold
//     begins only after copies went on as long as the last one lasted
//     (logins one after another hold copies half the time at most).
//     Each old server has its own gate (with its connection cap): first
//     logins at one old server never hold copies from another, so wrong
//     passwords tried at one migrating domain slow no other domain.
//   - Connections to one old server are capped, shared by every account's
//     copy (Settings.MaxConnections, default 10; connlimit.go): an
//     account's first connection waits for a place (places go to the
//     waiting copies first come first; a first login's connection opened
//     without a place is kept while its copy waits, up to keptConnMaxAge,
//     so that the old server logs the user in once), more are taken only
//     where places are free, so copies never wait for each other. A
//     connection the old server turns away (a BYE greeting, a close before
//     the greeting, NO [LIMIT]) lowers the cap to the connections held and
//     is learnt; the copy goes on with the connections it has (a worker
//     gives its mailbox back while another lives to take it). A lowered
//     cap climbs back one place at a time after Options.CapProbeAfter
//     without a refusal, never above Settings.MaxConnections.
//   - What was learnt about an old server (oldserver.Learnt: the login
//     form that works, a connection cap, capabilities; learnt.go) is kept
//     per domain in the store and is only a hint: it orders the login
//     forms the settings allow (a first login goes straight to the one
//     that works), never allows another, and unreadable facts or facts of
//     another server are ignored.
//   - Memory is bounded: each connection reads its message bodies into a
//     few reused buffers (larger ones into buffers of their own, as many
//     at most) and hands them straight to the store (store.Stage: written
//     to a pack file and summarized, outside any transaction); a batch
//     keeps only metadata until it commits. The bodies are read by
//     imapclient's reading goroutine as they come (reader.go, FetchReading
//     in the go-imap fork), which waits for a free buffer, never for the
//     FETCH loop. A message larger than
//     Options.MaxMessageSize is not copied and is reported. Each connection
//     has one UID FETCH (a chunk of UIDs) in flight, its messages streamed
//     back to back.
//   - A password the old server accepted (a first login, a bulk copy with
//     the user's password) is hashed off the login's and the copy's path
//     (hashLater), one such hash at a time, so that logins checking
//     passwords and copies come first; until it is stored, CheckPending
//     answers from memory. MigrateUsers returns once its hashes are stored;
//     once its copies are done and no other account's copy runs, the
//     hashes it left go at once, up to the CPUs (hashNow).
//   - Old-server passwords (the user's or a master user's) live in memory
//     only, for the life of the Engine; they are never written to the store,
//     to logs or to events.
//   - One message the old server cannot serve (NO, BAD, a response the
//     parser refuses) never stops an account: it is retried once alone,
//     recorded (store.CopyProblem) and passed; later runs try it again
//     (problem.go). A message is stored only once the response after it
//     began or its FETCH ended well; what was so read whole before a
//     connection broke (a BYE in the middle of a FETCH) is committed. A
//     folder the old server will not open is recorded the same way (old
//     UID 0) and the other folders go on. A message's items may come in
//     several FETCH responses or not at all (items.go): they are merged,
//     and a message without INTERNALDATE is dated by its Date: header.
//   - Mail that lands on the old server after a user moved (while the domain
//     is still migrating) is pulled by catch-up runs: on every LoggedIn and
//     every Options.CatchUpInterval. A new old-server UID that collides with
//     a UID given locally meanwhile gets a fresh local UID (store Renumber).
//   - Copies finish on their own (resume.go): a cut connection is
//     re-opened and only attempts that committed nothing count against
//     Options.Retries; a silent old server is given up after
//     oldserver.DialOptions.ReadStall; a full disk (store.IsDiskFull) ends
//     the run as ErrDiskFull, never retried as a connection problem; a
//     failed job is run again by the engine with backoff
//     (Options.ResumeBackoff) while it has credentials, its wait recorded
//     in the store; Resume picks up copies a stopped or dead process left.
//     CopyStates is the truth for the status: running only under a live
//     lease, else interrupted, retrying, disk-full or waiting-login.
//   - One process copies an account at a time (lease.go): a job takes the
//     account's copy lease first, in the commit that records its copy
//     wait and its state (store.StartCopy), and gives it back in the
//     commit of its end state (store.EndCopy), which also marks the
//     folders that needed nothing copied (empty ones: laterMarks; a run
//     that stops before leaves them to its next run); a lease of a dead process of this
//     machine is taken at once; a bulk run that meets another process's
//     copy waits for it, then catches up.
//
// Mailbox names: the account's hierarchy separator (store.Account.Delim) is
// the old server's, so the hierarchy looks the same to clients. A personal
// namespace prefix such as "INBOX." (Courier, Cyrus) is stripped: "INBOX.Sent"
// becomes "Sent", "INBOX.Données.Été 2020" becomes "Données.Été 2020". Names
// are UTF-8 in the store (modified UTF-7 on the wire is decoded by
// imapclient; a name in broken modified UTF-7 is kept as the server sent
// it, and commands send those bytes back: imap.RawMailboxMark; should those
// bytes be a good name's text too, the broken one is named "… (as sent)"). Each local mailbox remembers its old name (store
// Mailbox.OldName), which is how later runs match them up. Mailboxes of other
// and shared namespaces are not copied. A \Noselect parent is created as an
// empty mailbox so the hierarchy stays visible.
//
// Logins and passwords: FirstLogin checks a password at the old server before
// an account exists and creates the account with that password (hashed by the
// store). Bulk migration (MigrateAccount, MigrateUsers) logs in either with
// each user's password or with a master user (Dovecot "user*master" / SASL
// PLAIN authzid). An account created by a master-user bulk run without a
// password gets a random password nobody knows; the user's first login then
// goes through Engine.Login (or FirstLogin), which checks the password at the
// old server and, if it is accepted, makes it the account's password.
package migrate
