package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Copy moves a whole store into another, empty one: the embedded store
// (SQLite + packs) into the distributed engine (PostgreSQL + object
// storage) is what `mailferry store copy --to` does with it, but any
// engine pair works.
//
// Invariants:
//   - Every row keeps its ID, so accounts, mailboxes, messages and the
//     queue are the same numbers on both sides, and every table naming
//     them is copied as it is. Each message keeps its UID, flags,
//     INTERNALDATE, MODSEQ and summary; each mailbox its UIDVALIDITY,
//     UIDNEXT and HIGHESTMODSEQ. Message bytes go through the blob
//     interface (read from the source, their hash checked against
//     their key, stored the target's way), once per distinct content.
//   - The target must be empty: Copy refuses one holding anything
//     (ErrTargetNotEmpty), unless it holds an unfinished copy of the same
//     source, which it resumes.
//   - Restartable without duplicates: the domains and their tables are
//     copied in one target transaction together with the store_copy
//     marker, then each account in one transaction of its own (its
//     mailboxes, messages and every table naming it), then the relay
//     queue in the last one, which also removes the marker. An account
//     present in the target was committed whole, so a rerun after a
//     crash, a cancel or an object storage failure skips it and copies
//     the rest. Bytes put into object storage by a transaction that then
//     failed are named by nothing: a rerun reuses them, Compact's sweep
//     removes the rest.
//   - Every table is accounted for: copyTables (copied) and copySkipped
//     (not copied, with why) together name every table of the schema,
//     and Copy refuses a source holding a table it does not know rather
//     than leave it behind.
//   - The source should be opened with Options.Exclusive, so that nothing
//     serves or changes it meanwhile; the target is marked (store_copy),
//     and CopyUnderway tells a server not to serve it, until complete.

// ErrTargetNotEmpty: Copy's target holds data of its own.
var ErrTargetNotEmpty = errors.New("store: the target store is not empty")

// copyTable is one table Copy moves, and how.
type copyTable struct {
	name string
	// scope selects its rows: "global" (all), "account" (WHERE
	// account_id = ?, or id for accounts) or "mailbox" (of the account's
	// mailboxes).
	scope string
	key   []string // the columns naming a row, for Verify's words
	// conflict, when set, ends the INSERT: a row a trigger made already
	// (uidvalidity_top) takes the source's values.
	conflict string
}

// copyTables are the tables Copy moves, in the order their rows are
// inserted (a row after the rows it names). messages is copied by
// copyMessages, queue by copyQueue; blobs are made anew for both.
var copyTables = []copyTable{
	{name: "domains", scope: "global", key: []string{"id"}},
	{name: "outbound_routes", scope: "global", key: []string{"domain_id"}},
	{name: "old_server_learnt", scope: "global", key: []string{"domain_id"}},
	{name: "known_users", scope: "global", key: []string{"domain_id", "address"}},
	{name: "route_proofs", scope: "global", key: []string{"domain_id"}},
	{name: "mtasts_policies", scope: "global", key: []string{"domain"}},
	{name: "accounts", scope: "account", key: []string{"id"}},
	{name: "mailboxes", scope: "account", key: []string{"id"}},
	// After mailboxes, whose insert trigger sets it from their
	// UIDVALIDITYs: the source's keeps the top of deleted ones too.
	{name: "uidvalidity_top", scope: "account", key: []string{"account_id"},
		conflict: `ON CONFLICT(account_id) DO UPDATE SET top = excluded.top`},
	{name: "messages", scope: "mailbox", key: []string{"mailbox_id", "uid"}},
	{name: "mailbox_recent", scope: "mailbox", key: []string{"mailbox_id"}},
	{name: "expunged", scope: "mailbox", key: []string{"mailbox_id", "uid"}},
	{name: "expunge_history", scope: "mailbox", key: []string{"mailbox_id"}},
	{name: "kept_subscriptions", scope: "account", key: []string{"account_id", "name"}},
	{name: "kept_uidls", scope: "account", key: []string{"account_id", "uidl"}},
	{name: "uidl_reads", scope: "account", key: []string{"account_id"}},
	{name: "copy_waits", scope: "account", key: []string{"account_id"}},
	{name: "copy_problems", scope: "account", key: []string{"mailbox_id", "old_uid"}},
	{name: "queue", scope: "global", key: []string{"id"}},
}

// copySkipped are the tables Copy does not move, and why. CopyTables
// says the same to the admin.
var copySkipped = map[string]string{
	"blobs":            "made anew: one row per distinct message content copied, naming where the target keeps it; reference counts are kept by the target's triggers",
	"blob_data":        "message bytes of the oldest stores, moved through the blob interface like all bytes",
	"copy_leases":      "a running copier's claim on an account; the source is stopped, so any lease in it is stale",
	"maildrop_locks":   "a POP3 session's hold on its maildrop; the source is stopped, so any lock in it is stale",
	"object_sweeps":    "a Compact's hold on the source's own object storage",
	"store_copy":       "the marker of a copy under way",
	"store_identity":   "the store's own ID, which its bucket's marker names: the target has its own",
	"blob_key_form":    "the hash naming new message bytes: Copy gives the target the source's, so that new bytes keep meeting the keys copied",
	"store_epochs":     "the traces the source left in its own bucket: the target leaves its own",
	"bucket_adoptions": "the adoptions of the source's own bucket",
	"store_moves":      "the moves of the source's database seen since its bucket's last adoption",
	"login_failures":   "recent failed logins: they decay within minutes, and a copy is made while nothing serves",
	"login_checks":     "logins being checked: they end within minutes, and a copy is made while nothing serves",
	"nodes":            "the nodes serving the source, which is stopped; the target's nodes add themselves",
	"mailferry_schema": "the engine's own schema version",
	"sqlite_sequence":  "the engine's own counters (the queue's is carried over)",
	"mailbox_id_top":   "SQLite's highest mailbox id ever given, which the target keeps itself from the mailboxes copied in",
	"account_id_top":   "SQLite's highest account id ever given, which the target keeps itself from the accounts copied in",
}

// CopyTables says which tables Copy moves and which it does not, and why,
// for the command's help.
func CopyTables() (copied []string, skipped map[string]string) {
	for _, t := range copyTables {
		copied = append(copied, t.name)
	}
	out := make(map[string]string, len(copySkipped))
	for k, v := range copySkipped {
		out[k] = v
	}
	return copied, out
}

// CopyOptions tunes Copy. A nil *CopyOptions means defaults.
type CopyOptions struct {
	// Progress, when set, is told after each account and every few
	// hundred messages.
	Progress func(CopyProgress)
	// Workers is how many messages' bytes move at once; 0 means 4.
	Workers int
}

// CopyProgress is where a copy stands.
type CopyProgress struct {
	Accounts      int    // copied by this run, or found complete (Resumed)
	AccountsTotal int    // in the source
	Resumed       int    // accounts a previous run had copied whole
	Account       string // the account being copied, "" between accounts
	Messages      int64  // message rows copied by this run
	Bytes         int64  // message bytes moved by this run (each distinct content once)
	Queue         int    // relay queue items copied
	Elapsed       time.Duration
}

// CopyUnderway reports whether s holds an unfinished copy (Copy's
// marker) and of which source. Such a store is not whole: serve nothing
// from it until the copy is run again to its end.
func (s *Store) CopyUnderway(ctx context.Context) (source string, started time.Time, ok bool, err error) {
	var ms int64
	err = s.r.QueryRowContext(ctx, `SELECT source, started FROM store_copy WHERE id = 1`).Scan(&source, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	} else if err != nil {
		return "", time.Time{}, false, fmt.Errorf("store: %w", err)
	}
	return source, time.UnixMilli(ms), true, nil
}

// copySource names the source in the target's marker.
func copySource(src *Store) string {
	if src.d.postgres() {
		return src.where
	}
	if abs, err := filepath.Abs(src.where); err == nil {
		return abs
	}
	return src.where
}

// Copy copies every account, mailbox and message of src, and the rest a
// node needs (see copyTables), into dst, which must be empty or hold an
// unfinished copy of src (resumed). Cancelling ctx stops it between
// statements; what was committed stays and a rerun goes on from there.
func Copy(ctx context.Context, src, dst *Store, opts *CopyOptions) (*CopyProgress, error) {
	if opts == nil {
		opts = &CopyOptions{}
	}
	c := &copier{src: src, dst: dst, opts: opts, start: time.Now(), workers: opts.Workers}
	if c.workers <= 0 {
		c.workers = 4
	}
	if err := c.checkTables(ctx); err != nil {
		return nil, err
	}
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	accounts, err := queryAll(ctx, src.r, func(r rowScanner) (idName, error) {
		var a idName
		return a, r.Scan(&a.id, &a.name)
	}, `SELECT id, address FROM accounts ORDER BY id`)
	if err != nil {
		return nil, err
	}
	done := map[int64]bool{}
	ids, err := queryAll(ctx, dst.r, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM accounts`)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		done[id] = true
	}
	c.p.AccountsTotal = len(accounts)
	for _, a := range accounts {
		if err := ctx.Err(); err != nil {
			return &c.p, fmt.Errorf("store copy: cancelled after %d of %d accounts: %w", c.p.Accounts, len(accounts), err)
		}
		if done[a.id] {
			c.p.Accounts++
			c.p.Resumed++
			continue
		}
		c.p.Account = a.name
		c.tell()
		if err := c.account(ctx, a.id); err != nil {
			return &c.p, fmt.Errorf("store copy: account %s: %w", a.name, err)
		}
		c.p.Accounts++
		c.p.Account = ""
		c.tell()
	}
	if err := c.finish(ctx); err != nil {
		return &c.p, fmt.Errorf("store copy: relay queue: %w", err)
	}
	c.tell()
	return &c.p, nil
}

type idName struct {
	id   int64
	name string
}

// copier is one run of Copy.
type copier struct {
	src, dst *Store
	opts     *CopyOptions
	workers  int
	start    time.Time
	mu       sync.Mutex // p, from the byte movers
	p        CopyProgress
}

func (c *copier) tell() {
	if c.opts.Progress == nil {
		return
	}
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	p.Elapsed = time.Since(c.start)
	c.opts.Progress(p)
}

// tables lists s's tables.
func (s *Store) tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if s.d.postgres() {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	return queryAll(ctx, s.r, func(r rowScanner) (string, error) {
		var n string
		return n, r.Scan(&n)
	}, q)
}

// checkTables refuses a source with a table Copy does not know.
func (c *copier) checkTables(ctx context.Context) error {
	names, err := c.src.tables(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, t := range copyTables {
		known[t.name] = true
	}
	var unknown []string
	for _, n := range names {
		if !known[n] && copySkipped[n] == "" {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: store copy: the source has tables this Mailferry does not know how to copy (%s); use the Mailferry that made it", ErrInvalid, strings.Join(unknown, ", "))
	}
	return nil
}

// begin checks the target is empty, or holds an unfinished copy of the
// same source, and in the first case copies the global tables together
// with the marker.
func (c *copier) begin(ctx context.Context) error {
	source := copySource(c.src)
	if from, _, underway, err := c.src.CopyUnderway(ctx); err != nil {
		return err
	} else if underway {
		return fmt.Errorf("%w: store copy: the source is itself an unfinished copy (of %s); finish that copy first", ErrInvalid, from)
	}
	// The lock that keeps others out of the source (Options.Exclusive) is
	// this machine's; on PostgreSQL, nodes of other machines may serve it
	// and change it meanwhile. Their beats tell.
	if c.src.d.postgres() {
		nodes, err := c.src.Nodes(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		var live []string
		for _, n := range nodes {
			if n.Live(now) {
				live = append(live, Printable(n.Name, 80))
			}
		}
		if len(live) > 0 {
			return fmt.Errorf("%w: store copy: the source is served by %s (seen within %v); stop every node first", ErrInUse, strings.Join(live, ", "), NodeLive)
		}
	}
	from, started, underway, err := c.dst.CopyUnderway(ctx)
	if err != nil {
		return err
	}
	if underway {
		if from != source {
			return fmt.Errorf("%w: it holds an unfinished copy of another store (%s, started %s), not of %s; finish that one or empty the target", ErrTargetNotEmpty, from, started.Format(time.RFC3339), source)
		}
		return nil
	}
	if held, err := c.dst.holdings(ctx); err != nil {
		return err
	} else if held != "" {
		return fmt.Errorf("%w: it has %s; store copy fills only a new, empty store (a new database and bucket)", ErrTargetNotEmpty, held)
	}
	// An empty database on a bucket that holds message bytes: another
	// store's (the source's own, reached through another endpoint name,
	// or a live deployment's). Two stores on one bucket lose mail: each
	// one's Compact deletes the objects only the other names. A bucket
	// another store marked was refused at Open already (identity.go);
	// this catches blobs in the target's own (an emptied store's). (A
	// copy puts objects only after its marker is committed, so its own
	// rerun never meets this.)
	if c.dst.objects != nil {
		if key, err := c.dst.objects.anyBlob(ctx); err != nil {
			return fmt.Errorf("store copy: look into the target's bucket: %w", err)
		} else if key != "" {
			return fmt.Errorf("%w: its bucket %s already holds message bytes (%s), of another store; give the target a new, empty bucket", ErrTargetNotEmpty, c.dst.objects, key)
		}
	}
	t, err := c.beginTarget(ctx)
	if err != nil {
		return err
	}
	defer t.Rollback()
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO store_copy(id, source, started) VALUES (1, ?, ?)`, source, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store copy: mark the target: %w", err)
	}
	// The source's form for new keys (blobkey.go): its kept UIDLs and the
	// messages copied after the copy must get keys of one form.
	if _, err := t.tx.ExecContext(ctx, `UPDATE blob_key_form SET form = ? WHERE id = 1`, keyForm(c.src.b3)); err != nil {
		return fmt.Errorf("store copy: blob key form: %w", err)
	}
	for _, tb := range copyTables {
		if tb.scope != "global" || tb.name == "queue" {
			continue
		}
		if err := c.rows(ctx, t.tx, tb, "", nil, nil); err != nil {
			return err
		}
	}
	t.ch.domains = true
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store copy: domains: %w", err)
	}
	c.dst.b3 = c.src.b3
	return nil
}

// holdings says what s holds, in words ("" when empty).
func (s *Store) holdings(ctx context.Context) (string, error) {
	var parts []string
	for _, t := range []struct{ table, what string }{
		{"domains", "domains"}, {"accounts", "accounts"}, {"messages", "messages"},
		{"blobs", "stored messages' bytes"}, {"queue", "queued messages"}, {"mtasts_policies", "MTA-STS policies"},
	} {
		var n int64
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM `+t.table).Scan(&n); err != nil {
			return "", fmt.Errorf("store: %w", err)
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, t.what))
		}
	}
	return strings.Join(parts, ", "), nil
}

// scopeWhere is the WHERE clause selecting a table's rows of one account.
func scopeWhere(tb copyTable) string {
	switch {
	case tb.scope == "global":
		return ""
	case tb.name == "accounts":
		return ` WHERE id = ?`
	case tb.scope == "account":
		return ` WHERE account_id = ?`
	default:
		return ` WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?)`
	}
}

// columns lists a table's columns in the source.
func (c *copier) columns(ctx context.Context, table string) ([]string, error) {
	rows, err := c.src.r.QueryContext(ctx, `SELECT * FROM `+table+` WHERE 1 = 0`)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", table, err)
	}
	defer rows.Close()
	return rows.Columns()
}

// rows copies the rows of tb selected by where (with args, after the
// scope's) into tx, as they are; each row goes through each, if set,
// before it is inserted.
func (c *copier) rows(ctx context.Context, tx wtx, tb copyTable, extra string, args []any, each func(cols []string, row []any) error) error {
	cols, err := c.columns(ctx, tb.name)
	if err != nil {
		return err
	}
	q := `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + tb.name + scopeWhere(tb) + extra
	rs, err := c.src.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: read %s: %w", tb.name, err)
	}
	var all [][]any
	for rs.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			rs.Close()
			return fmt.Errorf("store: read %s: %w", tb.name, err)
		}
		all = append(all, row)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("store: read %s: %w", tb.name, err)
	}
	return c.insert(ctx, tx, tb, cols, all, each)
}

// insert writes rows of cols into tb in tx.
func (c *copier) insert(ctx context.Context, tx wtx, tb copyTable, cols []string, all [][]any, each func([]string, []any) error) error {
	if each != nil {
		for _, row := range all {
			if err := each(cols, row); err != nil {
				return err
			}
		}
	}
	err := insertRows(ctx, tx, `INSERT INTO `+tb.name+`(`+strings.Join(cols, ", ")+`) VALUES`, tb.conflict, len(cols), len(all),
		func(i int) []any { return all[i] }, nil)
	if err != nil {
		return fmt.Errorf("store: write %s: %w", tb.name, err)
	}
	return nil
}

// beginTarget begins a transaction of the target. On PostgreSQL it is
// exempt from idle_in_transaction_session_timeout (pgIdleInTx, which ends
// a stopped node's transaction): an account's transaction stages each
// batch's message bytes between two of its statements, which may take
// longer than that for big messages, and nothing else uses the target
// (Copy takes an empty one, or its own unfinished copy).
func (c *copier) beginTarget(ctx context.Context) (*Tx, error) {
	t, err := c.dst.Begin(ctx)
	if err != nil || !c.dst.d.postgres() {
		return t, err
	}
	if _, err := t.tx.ExecContext(ctx, `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		t.Rollback()
		return nil, fmt.Errorf("store copy: %w", err)
	}
	return t, nil
}

// zeroMessageCount makes a mailboxes row's message_count 0: the
// target's triggers count the messages as they are copied in after it
// (Verify then compares the counts).
func zeroMessageCount(cols []string, row []any) error {
	if i := indexOf(cols, "message_count"); i >= 0 {
		row[i] = int64(0)
	}
	return nil
}

// account copies one account, whole, in one target transaction.
func (c *copier) account(ctx context.Context, id int64) error {
	t, err := c.beginTarget(ctx)
	if err != nil {
		return err
	}
	defer t.Rollback()
	args := []any{id}
	for _, tb := range copyTables {
		if tb.scope == "global" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
		if tb.name == "messages" {
			if err := c.messages(ctx, t, id); err != nil {
				return err
			}
			continue
		}
		var each func([]string, []any) error
		if tb.name == "mailboxes" {
			each = zeroMessageCount
		}
		if err := c.rows(ctx, t.tx, tb, "", args, each); err != nil {
			return err
		}
	}
	t.ch.account(id)
	return t.Commit()
}
