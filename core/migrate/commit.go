package migrate

import (
	"context"
	"errors"
	"fmt"
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

// commit writes one batch in one transaction, with the mailbox's
// last copied UID, and counts it in the progress.
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
	// One mailbox's writes: other accounts' copies (on other nodes) go on
	// beside it (store.BeginMailbox).
	tx, err := e.st.BeginMailbox(ctx, p.local.ID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n, bytes int64
	all := make([]*store.NewMessage, len(b.msgs))
	for i, m := range b.msgs {
		all[i] = &store.NewMessage{UID: m.uid, Flags: m.flags, InternalDate: m.date, Staged: m.blob}
		bytes += m.blob.Size
	}
	// All at once; if a UID is taken, which only resumed or catch-up runs
	// meet, one by one instead (AppendMany then changed nothing).
	_, err = tx.AppendMany(p.local.ID, all)
	n = int64(len(all))
	if errors.Is(err, store.ErrExists) {
		n, bytes, err = 0, 0, nil
		for _, nm := range all {
			_, err := tx.Append(p.local.ID, nm)
			if errors.Is(err, store.ErrExists) {
				// The UID is taken or below UIDNEXT. The same message (a
				// copy committed before a crash) is not copied twice; new
				// old mail colliding with local mail gets a fresh UID.
				if old, merr := e.st.Message(ctx, p.local.ID, nm.UID); merr == nil && old.Size == nm.Staged.Size && old.BlobKey == nm.Staged.Key {
					continue
				}
				nm.Renumber = true
				_, err = tx.Append(p.local.ID, nm)
			}
			if err != nil {
				return fmt.Errorf("migrate: %s: store message %d of %q: %w", acct.Address, nm.UID, p.old.name, err)
			}
			n++
			bytes += nm.Staged.Size
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: %s: store messages of %q: %w", acct.Address, p.old.name, err)
	}
	if b.last > 0 {
		if err := tx.SetMailboxMigration(p.local.ID, state, b.last); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) {
		a.MessagesDone += n
		a.BytesDone += bytes
		a.MessagesTotal = max(a.MessagesTotal, a.MessagesDone)
		a.BytesTotal = max(a.BytesTotal, a.BytesDone)
	})
	return nil
}
