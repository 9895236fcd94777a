package store

import (
	"context"
	"fmt"
)

// SetMessageCache keeps what a reader made of a message (see
// Options.Summarize) so later readers need not parse it again.
func (s *Store) SetMessageCache(ctx context.Context, messageID int64, envelope, structure []byte) error {
	return s.write(ctx, func(tx wtx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `UPDATE messages SET envelope = ?, structure = ? WHERE id = ?`, envelope, structure, messageID)
		return err
	})
}

// MessageCache is what a reader made of one message (see Options.Summarize).
type MessageCache struct {
	MessageID           int64
	Envelope, Structure []byte
}

// SetMessageCaches keeps several messages' cache entries in one write
// transaction (see SetMessageCache). Missing messages are skipped.
func (s *Store) SetMessageCaches(ctx context.Context, entries []MessageCache) error {
	if len(entries) == 0 {
		return nil
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		upd := txStmt{tx, `UPDATE messages SET envelope = ?, structure = ? WHERE id = ?`}
		for _, e := range entries {
			if _, err := upd.ExecContext(ctx, e.Envelope, e.Structure, e.MessageID); err != nil {
				return fmt.Errorf("store: set message cache: %w", err)
			}
		}
		return nil
	})
}
