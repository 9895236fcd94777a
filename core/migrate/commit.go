package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"mailferry/core/store"
)

// batch is what one store transaction commits.
type batch struct {
	msgs  []*pending
	bytes int64
	last  uint32 // highest old UID below which everything was handled
	first time.Time
}

// commitConflictTries bounds how many times commit runs one batch's
// transaction when the database rolls it back as a conflict
// (store.ErrConflict: a PostgreSQL deadlock or serialization failure);
// after the last, the error goes to the copy's own retry (a new
// connection, the batch fetched again).
const commitConflictTries = 5

// commitConflictWait is the longest wait before the first rerun of a
// transaction that conflicted; it doubles with each further one, up to
// commitConflictWaitMax. Each wait is drawn at random from its upper half,
// so that the transactions that met do not meet again.
const (
	commitConflictWait    = 10 * time.Millisecond
	commitConflictWaitMax = 200 * time.Millisecond
)

// commit writes one batch in one transaction, with the mailbox's
// last copied UID, and counts it in the progress. A transaction the
// database rolled back as a conflict is run again at once, in place, a
// bounded number of times (the batch's bytes are staged and its rows
// rebuilt for each run; nothing of a rolled-back run was written).
func (e *Engine) commit(ctx context.Context, acct *store.Account, p *plan, state string, b *batch) error {
	// Sync the batch's bytes before taking the store's writer, so that
	// other writers do not wait for the disk.
	staged := make([]*store.StagedBlob, 0, len(b.msgs))
	for _, m := range b.msgs {
		if err := m.wait(); err != nil {
			return err
		}
		staged = append(staged, m.blob)
	}
	if err := e.st.SyncStaged(staged...); err != nil {
		return err
	}
	for try := 1; ; try++ {
		n, bytes, err := e.commitOnce(ctx, acct, p, state, b)
		if err == nil {
			e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) {
				a.MessagesDone += n
				a.BytesDone += bytes
				a.MessagesTotal = max(a.MessagesTotal, a.MessagesDone)
				a.BytesTotal = max(a.BytesTotal, a.BytesDone)
			})
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || try == commitConflictTries {
			return err
		}
		wait := min(commitConflictWait<<(try-1), commitConflictWaitMax)
		wait = wait/2 + rand.N(wait/2)
		e.log.Info("migrate: a batch's transaction conflicted with another; running it again", "account", acct.Address,
			"mailbox", p.old.name, "try", try, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// commitOnce runs the batch's transaction once and says how many messages
// and bytes it added.
func (e *Engine) commitOnce(ctx context.Context, acct *store.Account, p *plan, state string, b *batch) (n, bytes int64, err error) {
	// One mailbox's writes: other accounts' copies (on other nodes) go on
	// beside it (store.BeginMailbox).
	tx, err := e.st.BeginMailbox(ctx, p.local.ID)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	all := make([]*store.NewMessage, len(b.msgs))
	for i, m := range b.msgs {
		// A migrated message's save date is its internal date, when it
		// reached the old mailbox: the migration only moves it, and a
		// client's SAVEDSINCE must not find every migrated message saved
		// on migration day.
		all[i] = &store.NewMessage{UID: m.uid, Flags: m.flags, InternalDate: m.date, SaveDate: m.date, Staged: m.blob}
		bytes += m.blob.Size
	}
	// All at once; if a UID is taken, which only resumed or catch-up runs
	// meet (AppendMany then changed nothing), again without the messages
	// committed before (a copy committed before a crash: the same UID,
	// size and bytes), the others renumbered where their UID is taken or
	// below UIDNEXT (new old mail colliding with local mail gets a fresh
	// UID). Still one AppendMany: the blob rows of the whole batch are
	// taken in key order, as in every batch, so that two accounts' batches
	// naming the same bodies cannot deadlock (store.Tx.AppendMany); one
	// Append per message would take them in UID order.
	_, err = tx.AppendMany(p.local.ID, all)
	n = int64(len(all))
	if errors.Is(err, store.ErrExists) {
		rest := all[:0:0]
		n, bytes = 0, 0
		for _, nm := range all {
			if old, merr := e.st.Message(ctx, p.local.ID, nm.UID); merr == nil && old.Size == nm.Staged.Size && old.BlobKey == nm.Staged.Key {
				continue
			} else if merr != nil && !errors.Is(merr, store.ErrNotFound) {
				return 0, 0, fmt.Errorf("migrate: %s: message %d of %q: %w", acct.Address, nm.UID, p.old.name, merr)
			}
			nm.Renumber = true
			rest = append(rest, nm)
			n++
			bytes += nm.Staged.Size
		}
		_, err = tx.AppendMany(p.local.ID, rest)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %s: store messages of %q: %w", acct.Address, p.old.name, err)
	}
	if b.last > 0 {
		if err := tx.SetMailboxMigration(p.local.ID, state, b.last); err != nil {
			return 0, 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	return n, bytes, nil
}
