package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// FlagOp says how StoreFlags changes flags.
type FlagOp int

// Flag operations (RFC 3501 STORE FLAGS, +FLAGS, -FLAGS).
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// StoreFlags changes the flags of the messages with the given UIDs and
// returns them as they are now (missing UIDs are skipped). Each changed
// message gets a new MODSEQ.
func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string) ([]*Message, error) {
	res, err := s.StoreFlagsUnchangedSince(ctx, mailboxID, uids, op, flags, nil)
	if err != nil {
		return nil, err
	}
	return res.Messages, nil
}

// StoreResult is what a conditional STORE did.
type StoreResult struct {
	// Messages are the messages stored to (changed or not), as they are
	// now, in the order asked.
	Messages []*Message
	// Modified are the UIDs left alone because their MODSEQ was above
	// UNCHANGEDSINCE.
	Modified []uint32
	// ModSeq is the MODSEQ the changed messages got; 0 if none changed.
	ModSeq uint64
	// Since is, when ModSeq is not 0, the mailbox's HIGHESTMODSEQ just
	// before this STORE's change (ModSeq - 1: a change raises it by one):
	// no other change lies between Since and ModSeq, so a session that
	// knew every change up to Since knows every one up to ModSeq once it
	// has this STORE's result (imapfront's view).
	Since uint64
}

// StoreFlagsUnchangedSince is StoreFlags made conditional (RFC 7162 3.1.3,
// UNCHANGEDSINCE): when unchangedSince is not nil, a message whose MODSEQ
// is above it is left alone and its UID listed in Modified. The test and the
// change are one transaction, so no other change slips in between.
func (s *Store) StoreFlagsUnchangedSince(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string, unchangedSince *uint64) (*StoreResult, error) {
	flags = cleanFlags(flags)
	res := &StoreResult{}
	wctx := s.writeCtx(ctx)
	// Flags only: committed without holding the writer for the fsync,
	// answered once committed, durable within flagSyncBound or with the
	// next fsync of the log, whichever comes first (walsync.go).
	err := s.writeFlags(ctx, func(tx wtx, ch *changes) error {
		*res = StoreResult{} // run again if it went past the marks (marks.go)
		sel := txStmt{tx, `SELECT ` + messageCols + ` FROM messages WHERE mailbox_id = ? AND uid = ?`}
		upd := txStmt{tx, `UPDATE messages SET flags = ?, modseq = ? WHERE id = ?`}
		var modseq uint64
		// The account comes with the new MODSEQ (bumpModSeqAccount): a
		// statement fewer on the writer than reading it first. A message
		// found means its mailbox is there (messages go with it); with
		// none found, the mailbox is looked up below.
		var accountID int64
		for _, uid := range uids {
			m, err := scanMessage(sel.QueryRowContext(wctx, mailboxID, uid), false)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if unchangedSince != nil && m.ModSeq > *unchangedSince {
				res.Modified = append(res.Modified, uid)
				continue
			}
			nf := applyFlags(m.Flags, op, flags)
			if strings.Join(nf, " ") != strings.Join(m.Flags, " ") {
				if modseq == 0 {
					if modseq, accountID, err = bumpModSeqAccount(wctx, tx, mailboxID); err != nil {
						return err
					}
				}
				if _, err := upd.ExecContext(wctx, strings.Join(nf, " "), modseq, m.ID); err != nil {
					return fmt.Errorf("store: %w", err)
				}
				m.Flags, m.ModSeq = nf, modseq
				ch.mailbox(accountID, mailboxID, modseq)
			}
			res.Messages = append(res.Messages, m)
		}
		res.ModSeq = modseq
		if modseq != 0 {
			// bumpModSeqAccount's UPDATE raised it by one, under the
			// write lock: nothing else came between.
			res.Since = modseq - 1
		}
		if len(res.Messages) == 0 && len(res.Modified) == 0 {
			// Nothing found: a mailbox that is gone is ErrNotFound, as
			// before any message is looked at.
			if _, err := mailboxAccount(wctx, tx, mailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func applyFlags(cur []string, op FlagOp, flags []string) []string {
	switch op {
	case FlagsSet:
		return cleanFlags(flags)
	case FlagsAdd:
		return cleanFlags(append(append([]string{}, cur...), flags...))
	default:
		out := make([]string, 0, len(cur))
		for _, f := range cur {
			if !hasFold(flags, f) {
				out = append(out, f)
			}
		}
		return out
	}
}

// cleanFlags drops empty and repeated flags (compared without case).
func cleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = strings.TrimSpace(f)
		if f == "" || strings.ContainsAny(f, " \t\r\n") || hasFold(out, f) {
			continue
		}
		out = append(out, f)
	}
	return out
}
