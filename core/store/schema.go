package store

import (
	"fmt"
)

// schema holds the upgrade steps; step i brings user_version from i to i+1.
// Never edit a released step: append a new one.
var schema = []string{
	// 1: the first schema.
	`
CREATE TABLE domains (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
	migrating  INTEGER NOT NULL DEFAULT 0,
	old_server TEXT NOT NULL DEFAULT '',
	created    INTEGER NOT NULL
);
CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	domain_id     INTEGER NOT NULL REFERENCES domains(id),
	address       TEXT NOT NULL UNIQUE COLLATE NOCASE,
	password_hash TEXT NOT NULL,
	delim         TEXT NOT NULL DEFAULT '/',
	created       INTEGER NOT NULL,
	mig_state     TEXT NOT NULL DEFAULT '',
	mig_error     TEXT NOT NULL DEFAULT '',
	mig_updated   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_domain ON accounts(domain_id);
CREATE TABLE mailboxes (
	id             INTEGER PRIMARY KEY,
	account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name           TEXT NOT NULL,
	special_use    TEXT NOT NULL DEFAULT '',
	subscribed     INTEGER NOT NULL DEFAULT 0,
	uid_validity   INTEGER NOT NULL,
	uid_next       INTEGER NOT NULL DEFAULT 1,
	highest_modseq INTEGER NOT NULL DEFAULT 1,
	mig_state      TEXT NOT NULL DEFAULT '',
	mig_last_uid   INTEGER NOT NULL DEFAULT 0,
	mig_old_name   TEXT NOT NULL DEFAULT '',
	UNIQUE (account_id, name)
);
CREATE TABLE blobs (
	id   INTEGER PRIMARY KEY,
	key  TEXT NOT NULL UNIQUE,
	size INTEGER NOT NULL,
	refs INTEGER NOT NULL DEFAULT 0,
	data BLOB NOT NULL
);
CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,
	flags         TEXT NOT NULL DEFAULT '',
	internal_date INTEGER NOT NULL,
	internal_zone INTEGER NOT NULL DEFAULT 0,
	size          INTEGER NOT NULL,
	blob          TEXT NOT NULL,
	modseq        INTEGER NOT NULL,
	envelope      BLOB,
	structure     BLOB,
	UNIQUE (mailbox_id, uid)
);
CREATE TABLE queue (
	id           INTEGER PRIMARY KEY,
	created      INTEGER NOT NULL,
	mail_from    TEXT NOT NULL,
	rcpts        TEXT NOT NULL,
	blob         TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL DEFAULT 'queued',
	note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX queue_due ON queue(state, next_attempt);

-- Blob reference counts follow the rows that name them, also through
-- ON DELETE CASCADE, so no path can leak or free a blob too early.
CREATE TRIGGER messages_ref AFTER INSERT ON messages BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE key = NEW.blob;
END;
CREATE TRIGGER messages_unref AFTER DELETE ON messages BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE key = OLD.blob;
	DELETE FROM blobs WHERE key = OLD.blob AND refs <= 0;
END;
CREATE TRIGGER queue_ref AFTER INSERT ON queue BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE key = NEW.blob;
END;
CREATE TRIGGER queue_unref AFTER DELETE ON queue BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE key = OLD.blob;
	DELETE FROM blobs WHERE key = OLD.blob AND refs <= 0;
END;
`,
	// 2: message bytes move to blob_data, so that a reference count update
	// no longer rewrites the whole blob row (SQLite rewrites a row with all
	// its overflow pages on UPDATE).
	`
CREATE TABLE blob_data (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
INSERT INTO blob_data(id, data) SELECT id, data FROM blobs;
ALTER TABLE blobs DROP COLUMN data;
CREATE TRIGGER blobs_gone AFTER DELETE ON blobs BEGIN
	DELETE FROM blob_data WHERE id = OLD.id;
END;

-- Queue IDs are never reused (AUTOINCREMENT), so an admin's "retry 12"
-- cannot hit a newer message that took a deleted one's ID.
DROP TRIGGER queue_ref;
DROP TRIGGER queue_unref;
CREATE TABLE queue_new (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	created      INTEGER NOT NULL,
	mail_from    TEXT NOT NULL,
	rcpts        TEXT NOT NULL,
	blob         TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL DEFAULT 'queued',
	note         TEXT NOT NULL DEFAULT ''
);
INSERT INTO queue_new SELECT id, created, mail_from, rcpts, blob, attempts, next_attempt, last_error, state, note FROM queue;
DROP TABLE queue;
ALTER TABLE queue_new RENAME TO queue;
CREATE INDEX queue_due ON queue(state, next_attempt);
CREATE TRIGGER queue_ref AFTER INSERT ON queue BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE key = NEW.blob;
END;
CREATE TRIGGER queue_unref AFTER DELETE ON queue BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE key = OLD.blob;
	DELETE FROM blobs WHERE key = OLD.blob AND refs <= 0;
END;
`,
	// 3: new message bytes go to append-only pack files (pack.go); the blob
	// row says where. Rows with no pack keep their bytes in blob_data.
	`
ALTER TABLE blobs ADD COLUMN pack INTEGER;
ALTER TABLE blobs ADD COLUMN off INTEGER;
CREATE INDEX blobs_pack ON blobs(pack, off);
`,
	// 4: an account made by migration is bound to the login name the old
	// server accepted (old_login); password_origin says where its password
	// came from ('random': a bulk copy's, nobody knows it; 'old': the old
	// server's, at a first login; 'admin'); first_login is when it was first
	// logged in to. Accounts migrated before this step fail closed: their
	// password is taken as the old server's ('old'), never again replaced
	// by what the old server says (an admin may have reset a leaked one).
	`
ALTER TABLE accounts ADD COLUMN old_login TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN password_origin TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN first_login INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET password_origin = 'old' WHERE mig_state != '';
UPDATE accounts SET password_origin = 'admin' WHERE mig_state = '';
`,
	// 5: copy leases (lease.go): an account is copied by one process at a
	// time. Self-contained: it depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS copy_leases (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	holder     TEXT NOT NULL,
	expires    INTEGER NOT NULL -- Unix milliseconds
);
`,
	// 6: outbound routes (route.go): how a local domain's mail leaves, as
	// the relay's JSON. Self-contained: it depends on no other step after
	// the first.
	`
CREATE TABLE IF NOT EXISTS outbound_routes (
	domain_id INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
	route     TEXT NOT NULL,
	updated   INTEGER NOT NULL
);
`,
	// 7: what the migration engine learnt about a domain's old server
	// (learnt.go), as its JSON. Self-contained: it depends on no other
	// step after the first.
	`
CREATE TABLE IF NOT EXISTS old_server_learnt (
	domain_id INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
	learnt    TEXT NOT NULL,
	updated   INTEGER NOT NULL
);
`,
	// 8: the highest UIDVALIDITY each account ever gave a mailbox
	// (mailbox.go), kept by triggers, so that a mailbox deleted and made
	// again gets a higher one whatever the clock does. Self-contained: it
	// depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS uidvalidity_top (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	top        INTEGER NOT NULL
);
INSERT OR REPLACE INTO uidvalidity_top(account_id, top)
	SELECT account_id, max(uid_validity) FROM mailboxes GROUP BY account_id;
CREATE TRIGGER IF NOT EXISTS uidvalidity_top_insert AFTER INSERT ON mailboxes BEGIN
	INSERT INTO uidvalidity_top(account_id, top) VALUES (NEW.account_id, NEW.uid_validity)
		ON CONFLICT(account_id) DO UPDATE SET top = max(top, excluded.top);
END;
CREATE TRIGGER IF NOT EXISTS uidvalidity_top_update AFTER UPDATE OF uid_validity ON mailboxes BEGIN
	INSERT INTO uidvalidity_top(account_id, top) VALUES (NEW.account_id, NEW.uid_validity)
		ON CONFLICT(account_id) DO UPDATE SET top = max(top, excluded.top);
END;
`,
	// 9: \Recent (recent.go): the highest UID of each mailbox that an IMAP
	// session has already claimed as recent; messages above it are recent.
	// Messages stored before this step are not. Self-contained: it depends
	// on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS mailbox_recent (
	mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
	last_uid   INTEGER NOT NULL
);
INSERT OR REPLACE INTO mailbox_recent(mailbox_id, last_uid) SELECT id, uid_next - 1 FROM mailboxes;
`,
	// 10: subscriptions outlive their mailbox (RFC 3501 6.3.6): the name of a
	// subscribed mailbox that is deleted is kept, and a mailbox made again
	// under it is subscribed (subscription.go). Self-contained: it depends
	// on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS kept_subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
);
CREATE TRIGGER IF NOT EXISTS subscription_kept AFTER DELETE ON mailboxes
	WHEN OLD.subscribed AND EXISTS (SELECT 1 FROM accounts WHERE id = OLD.account_id) BEGIN
	INSERT OR IGNORE INTO kept_subscriptions(account_id, name) VALUES (OLD.account_id, OLD.name);
END;
CREATE TRIGGER IF NOT EXISTS subscription_back AFTER INSERT ON mailboxes
	WHEN EXISTS (SELECT 1 FROM kept_subscriptions WHERE account_id = NEW.account_id AND name = NEW.name) BEGIN
	UPDATE mailboxes SET subscribed = 1 WHERE id = NEW.id;
	DELETE FROM kept_subscriptions WHERE account_id = NEW.account_id AND name = NEW.name;
END;
CREATE TRIGGER IF NOT EXISTS subscription_back_rename AFTER UPDATE OF name ON mailboxes
	WHEN EXISTS (SELECT 1 FROM kept_subscriptions WHERE account_id = NEW.account_id AND name = NEW.name) BEGIN
	UPDATE mailboxes SET subscribed = 1 WHERE id = NEW.id;
	DELETE FROM kept_subscriptions WHERE account_id = NEW.account_id AND name = NEW.name;
END;
`,
	// 11: UIDLs kept from an old POP3 server (uidl.go): per account, each
	// old UIDL with the SHA-256 of its message's bytes and, once matched,
	// the INBOX message it names; uidl_reads marks the accounts whose old
	// list was read. Self-contained: it depends on no other step after
	// the first.
	`
CREATE TABLE IF NOT EXISTS kept_uidls (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	uidl       TEXT NOT NULL,
	blob       TEXT NOT NULL,
	mailbox_id INTEGER NOT NULL DEFAULT 0,
	uid        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (account_id, uidl)
);
CREATE TABLE IF NOT EXISTS uidl_reads (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	read_at    INTEGER NOT NULL
);
`,
	// 12: copy waits (wait.go): why an account's copy is not running and when
	// it is tried again. Self-contained: it depends on no other step after
	// the first.
	`
CREATE TABLE IF NOT EXISTS copy_waits (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	reason     TEXT NOT NULL,
	until      INTEGER NOT NULL, -- Unix milliseconds of the next attempt; 0 none planned
	holder     TEXT NOT NULL     -- the engine that will try again; '' none
);
`,
	// 13: expunged UIDs with the MODSEQ of their expunge (expunge.go), for
	// QRESYNC's VANISHED (RFC 7162 3.2.5, 3.2.6) and Store.Delta; messages
	// by MODSEQ. Self-contained: it depends on no other step after the
	// first.
	`
CREATE TABLE IF NOT EXISTS expunged (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox_id, modseq);
-- Expunges are recorded from here on: for a mailbox that exists now,
-- those at or below its HIGHESTMODSEQ were not (Store.ExpungeHistory).
CREATE TABLE IF NOT EXISTS expunge_history (
	mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
	since      INTEGER NOT NULL
);
INSERT OR IGNORE INTO expunge_history(mailbox_id, since) SELECT id, highest_modseq FROM mailboxes;
-- A session learns what changed since its MODSEQ without reading the
-- whole mailbox (Store.Delta).
CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);
`,
	// 14: copy problems (problem.go): messages the old server could not
	// serve, per mailbox and old UID, with the server's words.
	// Self-contained: it depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS copy_problems (
	mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	old_mailbox TEXT NOT NULL,
	old_uid     INTEGER NOT NULL,
	words       TEXT NOT NULL,
	tries       INTEGER NOT NULL DEFAULT 1,
	first_seen  INTEGER NOT NULL, -- Unix milliseconds
	last_seen   INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, old_uid)
);
CREATE INDEX IF NOT EXISTS copy_problems_account ON copy_problems(account_id);
`,
	// known users and route proofs (knownuser.go): the old server's users
	// as the admin listed them or the relay saw them, and the latest test
	// message a domain's post-migration outbound route delivered; MTA-STS
	// policies (mtasts.go).
	// Self-contained: it depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS known_users (
	domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	address   TEXT NOT NULL COLLATE NOCASE,
	source    TEXT NOT NULL, -- 'list' (the admin's) or 'relay' (the old server accepted it)
	added     INTEGER NOT NULL,
	PRIMARY KEY (domain_id, address)
);
CREATE TABLE IF NOT EXISTS route_proofs (
	domain_id INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
	route     TEXT NOT NULL,
	rcpt      TEXT NOT NULL,
	remote    TEXT NOT NULL,
	reply     TEXT NOT NULL,
	at        INTEGER NOT NULL
);
-- MTA-STS policies of recipient domains (RFC 8461 section 5.1: kept until
-- they expire, across restarts).
CREATE TABLE IF NOT EXISTS mtasts_policies (
	domain  TEXT PRIMARY KEY COLLATE NOCASE,
	id      TEXT NOT NULL,
	policy  TEXT NOT NULL,
	expires INTEGER NOT NULL
);
`,
	// A SELECT's snapshot (Store.Snapshot: every message's UID, MODSEQ and
	// flags) read from an index that holds them all, not from the message
	// rows with their ENVELOPE and BODYSTRUCTURE (about 2x less read).
	// Self-contained: it depends on no other step after the first.
	`
CREATE INDEX IF NOT EXISTS messages_snapshot ON messages(mailbox_id, uid, modseq, flags);
`,
	// 15: object storage sweeps (sweep.go): until when a Compact may be
	// deleting unreferenced objects, so that a commit naming an object
	// staged before then checks it is still there. One row. Self-contained:
	// it depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS object_sweeps (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	busy_until INTEGER NOT NULL -- Unix milliseconds
);
`,
	// Failed logins shared by every process on the database (loginfail.go):
	// per key, the time at which its failures will have decayed to none.
	// Self-contained: it depends on no other step after the first.
	`
CREATE TABLE IF NOT EXISTS login_failures (
	key     TEXT PRIMARY KEY,
	expires INTEGER NOT NULL -- Unix milliseconds
);
CREATE INDEX IF NOT EXISTS login_failures_expires ON login_failures(expires);
`,
	// A store copy under way into this store (storecopy.go): the source it
	// copies and when it began, so that a rerun resumes it and nothing
	// else opens a half-copied store as if it were whole. One row, gone
	// when the copy is complete. Self-contained: it depends on no other
	// step after the first.
	`
CREATE TABLE IF NOT EXISTS store_copy (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	source  TEXT NOT NULL,
	started INTEGER NOT NULL -- Unix milliseconds
);
`,
	// The nodes that serve this store (node.go): each `serve` says it is
	// alive every NodeBeat. Self-contained: it depends on no other step.
	`
CREATE TABLE IF NOT EXISTS nodes (
	name      TEXT PRIMARY KEY,
	version   TEXT NOT NULL,
	started   INTEGER NOT NULL, -- Unix milliseconds
	last_seen INTEGER NOT NULL  -- Unix milliseconds
);
`,
	// Logins being checked, shared by every process (logincheck.go): per
	// key of login_failures, the checks under way and until when they
	// count. Self-contained: it depends only on the login_failures step.
	`
ALTER TABLE login_failures ADD COLUMN checking INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN checking_until INTEGER NOT NULL DEFAULT 0; -- Unix milliseconds
`,
	// The store's identity (identity.go): the ID its object storage
	// bucket's marker names, made at the first Open after this step, so
	// that a store refuses a bucket another store uses. One row.
	// Self-contained: it depends on no other step.
	`
CREATE TABLE IF NOT EXISTS store_identity (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	store   TEXT NOT NULL,
	created INTEGER NOT NULL -- Unix milliseconds
);
`,
	// Logins being checked, one row per check and key, each with its own
	// end (logincheck.go): a count per key with one end for all (the step
	// before the store's identity, no longer used) let a steady stream of logins keep a dead
	// process's places counting for ever. Self-contained: it depends on
	// no other step.
	`
CREATE TABLE IF NOT EXISTS login_checks (
	id      INTEGER NOT NULL, -- the check (random), shared by its keys
	key     TEXT NOT NULL,
	expires INTEGER NOT NULL, -- Unix milliseconds: counts until then
	PRIMARY KEY (id, key)
);
CREATE INDEX IF NOT EXISTS login_checks_key ON login_checks(key, expires);
CREATE INDEX IF NOT EXISTS login_checks_expires ON login_checks(expires);
`,
	// The durable marks of UIDs and MODSEQs (marks.go): the highest UIDNEXT
	// and HIGHESTMODSEQ a commit not yet fsynced may show. SQLite only (a
	// PostgreSQL commit is durable before it is seen). Self-contained: it
	// depends only on the mailboxes table.
	`
ALTER TABLE mailboxes ADD COLUMN uid_next_mark INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN modseq_mark INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET uid_next_mark = uid_next, modseq_mark = highest_modseq;
CREATE INDEX IF NOT EXISTS mailboxes_past_mark ON mailboxes(id) WHERE uid_next > uid_next_mark OR highest_modseq > modseq_mark;
`,
	// POP3 maildrop locks (lease.go): one POP3 session per account across
	// every process and node on the database. Self-contained: it depends
	// only on the accounts table.
	`
CREATE TABLE IF NOT EXISTS maildrop_locks (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	holder     TEXT NOT NULL,
	expires    INTEGER NOT NULL -- Unix milliseconds
);
`,
	// The epochs this database minted or adopted, and the adoptions of
	// its bucket (epoch.go): a copy of the database (a restore, a clone)
	// is told from it by the epochs each leaves in the bucket, so that
	// neither deletes the other's mail. Self-contained: it depends on no
	// other step.
	`
CREATE TABLE IF NOT EXISTS store_epochs (
	token   TEXT PRIMARY KEY,
	made    INTEGER NOT NULL, -- Unix milliseconds
	adopted INTEGER NOT NULL DEFAULT 0, -- 1: another database's, taken on by an adoption
	place   TEXT NOT NULL DEFAULT '' -- where the database that minted it was (place.go)
);
CREATE TABLE IF NOT EXISTS store_moves (
	at  INTEGER NOT NULL, -- Unix milliseconds
	was TEXT NOT NULL,  -- the place of the newest epoch before
	now TEXT NOT NULL   -- the place the database was opened at
);
CREATE TABLE IF NOT EXISTS bucket_adoptions (
	at          INTEGER NOT NULL, -- Unix milliseconds
	keep_before INTEGER NOT NULL, -- objects last modified up to then are never swept (Unix ms, the object storage's clock); 0: none kept
	epochs      INTEGER NOT NULL  -- the other databases' epochs adopted
);
`,
	// The highest id a mailbox ever had (mailbox.go, newMailboxID), kept
	// by a trigger, so that a mailbox made after the one with the highest
	// id was deleted does not take its id again (SQLite's INTEGER PRIMARY
	// KEY would). SQLite only: PostgreSQL's identity column never reuses
	// one. Self-contained: it depends only on the mailboxes table.
	`
CREATE TABLE IF NOT EXISTS mailbox_id_top (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	top INTEGER NOT NULL
);
INSERT OR IGNORE INTO mailbox_id_top(id, top) SELECT 1, coalesce(max(id), 0) FROM mailboxes;
CREATE TRIGGER IF NOT EXISTS mailbox_id_top_insert AFTER INSERT ON mailboxes BEGIN
	UPDATE mailbox_id_top SET top = max(top, NEW.id) WHERE id = 1;
END;
`,
	// The highest id an account ever had (account.go, newAccountID), as
	// mailbox_id_top is for mailboxes: processes keep state by account id
	// (the migration engine's old-server passwords and pending hashes, its
	// run times and failure counts), which an account made after the one
	// with the highest id was deleted would otherwise inherit. SQLite
	// only; self-contained: it depends only on the accounts table.
	`
CREATE TABLE IF NOT EXISTS account_id_top (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	top INTEGER NOT NULL
);
INSERT OR IGNORE INTO account_id_top(id, top) SELECT 1, coalesce(max(id), 0) FROM accounts;
CREATE TRIGGER IF NOT EXISTS account_id_top_insert AFTER INSERT ON accounts BEGIN
	UPDATE account_id_top SET top = max(top, NEW.id) WHERE id = 1;
END;
`,
	// Each mailbox's count of messages, kept by triggers on messages
	// (through ON DELETE CASCADE too), so that a session's poll
	// (Store.Delta) reads it from the mailbox's row instead of counting
	// the mailbox's index entries, which cost each poll of every session
	// in proportion to the mailbox's size (half of a Delta's CPU for
	// 2,000 messages). Self-contained: it depends only on the mailboxes
	// and messages tables.
	`
ALTER TABLE mailboxes ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET message_count = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id);
CREATE TRIGGER IF NOT EXISTS message_count_insert AFTER INSERT ON messages BEGIN
	UPDATE mailboxes SET message_count = message_count + 1 WHERE id = NEW.mailbox_id;
END;
CREATE TRIGGER IF NOT EXISTS message_count_delete AFTER DELETE ON messages BEGIN
	UPDATE mailboxes SET message_count = message_count - 1 WHERE id = OLD.mailbox_id;
END;
`,
	// 30: each message's save date (RFC 8514 SAVEDATE): when it was saved
	// into its mailbox (APPEND, COPY, MOVE, delivery; a migrated message's
	// INTERNALDATE), Unix seconds. 0, as every row written before, is read
	// as the message's internal date (scanMessage): no row is rewritten.
	// Self-contained: it depends only on the messages table.
	`
ALTER TABLE messages ADD COLUMN save_date INTEGER NOT NULL DEFAULT 0;
`,
	// 31: the hash that names new message bytes (blobkey.go), one row, made
	// by the first Open after this step (loadKeyForm): BLAKE3 for a store
	// that holds no blob and no kept POP3 UIDL then, on a CPU where
	// BLAKE3 is the faster hash, SHA-256 otherwise. Self-contained.
	`
CREATE TABLE IF NOT EXISTS blob_key_form (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	form TEXT NOT NULL CHECK (form IN ('sha256', 'blake3'))
);
`,
}

// upgrade brings the database schema to the newest version, one step per
// transaction. A database newer than this build is refused. Each step reads
// the version again inside its transaction (BEGIN IMMEDIATE on the writer
// connection, so one process at a time): stores opened at once on one new
// file (serve and migrate started together) apply each step once, and the
// later ones find it done (TestFirstOpensAtOnce).
func (s *Store) upgrade() (err error) {
	var v int
	if err := s.w.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if v > len(schema) {
		return fmt.Errorf("store: database schema version %d is newer than this Mailferry (%d); upgrade Mailferry", v, len(schema))
	}
	if v > 0 && v < 4 {
		// Addresses made before step 4 may not be canonical.
		defer func() {
			if err == nil {
				err = s.canonicalizeAccounts()
			}
		}()
	}
	for v < len(schema) {
		if v, err = s.upgradeStep(); err != nil {
			return err
		}
	}
	return nil
}

// upgradeStep applies the step after the database's version, if there is
// one, and returns the version it leaves.
func (s *Store) upgradeStep() (int, error) {
	tx, err := s.w.Begin()
	if err != nil {
		return 0, fmt.Errorf("store: upgrade: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	if v >= len(schema) {
		return v, nil // another process did it
	}
	if _, err := tx.Exec(schema[v]); err != nil {
		return 0, fmt.Errorf("store: upgrade to schema %d: %w", v+1, err)
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
		return 0, fmt.Errorf("store: upgrade to schema %d: %w", v+1, err)
	}
	if err := s.wal.failedCommit(tx.Commit()); err != nil {
		return 0, fmt.Errorf("store: upgrade to schema %d: %w", v+1, err)
	}
	return v + 1, nil
}

// canonicalizeAccounts brings the addresses of accounts made before they
// had to be canonical to their canonical form (one person, one account:
// "carol@example.test." and "carol@example.test" must be one login). One
// that cannot be (not an address any more, or its canonical form taken by
// another account) is left as it is and logged for the admin.
func (s *Store) canonicalizeAccounts() error {
	rows, err := s.w.Query(`SELECT id, address FROM accounts`)
	if err != nil {
		return fmt.Errorf("store: canonical addresses: %w", err)
	}
	type fix struct {
		id       int64
		from, to string
	}
	var fixes []fix
	for rows.Next() {
		var f fix
		if err := rows.Scan(&f.id, &f.from); err != nil {
			rows.Close()
			return fmt.Errorf("store: canonical addresses: %w", err)
		}
		c, cerr := CanonicalAddress(f.from)
		switch {
		case cerr != nil:
			s.log.Warn("store: account address is not a canonical address; it can no longer log in", "account", f.from, "err", cerr)
		case c != f.from:
			f.to = c
			fixes = append(fixes, f)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: canonical addresses: %w", err)
	}
	for _, f := range fixes {
		_, err := s.w.Exec(`UPDATE accounts SET address = ? WHERE id = ?`, f.to, f.id)
		if isUnique(err) {
			s.log.Warn("store: two accounts are one address; the older form can no longer log in", "account", f.from, "canonical", f.to)
			continue
		} else if err != nil {
			return fmt.Errorf("store: canonical address of %q: %w", f.from, err)
		}
		s.log.Info("store: account address made canonical", "from", f.from, "to", f.to)
	}
	return nil
}
