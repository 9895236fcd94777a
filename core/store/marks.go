package store

import (
	"context"
	"fmt"
)

// Durable marks of UIDs and MODSEQs (SQLite).
//
// A commit with synchronous=NORMAL (walsync.go: APPEND, COPY, MOVE,
// EXPUNGE, STORE) is seen by every other session, and by other processes,
// before the fsync of the log makes it durable. A power cut in between
// loses it: that is allowed for the command itself (an APPEND is answered
// only after the fsync, so its client appends again; a STORE is lost as
// Dovecot's mail_fsync=optimized loses one), but not for the numbers
// other clients saw. Without more, the next message would take the UID
// of the lost one, and the next change its MODSEQ: a client that cached
// UID N would show another message under it, and a CONDSTORE/QRESYNC
// client that saw MODSEQ M would miss a later change given M again.
//
// So each mailbox has marks (uid_next_mark, modseq_mark): the highest
// UIDNEXT and HIGHESTMODSEQ that a commit not yet durable may show.
//   - Only a commit made with synchronous=FULL (durable before anyone sees
//     it) raises them: every such commit on SQLite (Tx.Commit) raises
//     those of the mailboxes it took past them (raiseMarks), to uid_next +
//     uidMarkStep and highest_modseq + modseqMarkStep.
//   - A NORMAL commit that would leave any mailbox past its marks is not
//     made (commitNormal: errPastMark): it is rolled back and done again
//     as a FULL commit, which raises them. So a number seen before its
//     fsync is always below a mark that was durable before it was seen.
//   - Open moves every mailbox's UIDNEXT and HIGHESTMODSEQ up to its marks
//     (jumpToMarks): after a power cut, new numbers start above anything
//     any client may have seen. Close, once everything is durable, brings
//     the marks down to the numbers (lowerMarks), so that a clean restart
//     leaves no gap; one Store opened beside another that is running
//     (migrate beside serve) leaves gaps of at most a step in the
//     mailboxes the other was writing. Gaps are allowed (RFC 3501 2.3.1.1:
//     UIDs strictly ascend, not necessarily contiguously; RFC 7162 3.1
//     likewise for MODSEQs).
//
// The steps: a FULL commit holds the writer for an fsync (about 2 ms on a
// quiet disk, the wait session 9 traced STOREs queuing behind), so they
// set how often one is paid: once in 100 appends to a mailbox (1%), once
// in 1000 changes (STOREs are the most frequent write). What a step costs
// is the gap after an unclean stop: 100 of a mailbox's 2^32 UIDs, 1000 of
// its 2^63 MODSEQs.
//
// What a power cut still rolls back, and why it is allowed: a change seen
// but not yet durable is lost with its commit. A lost APPEND, COPY or MOVE
// leaves a UID that is never used again (a client that saw it finds it
// gone, as if expunged). A lost STORE leaves the flags as they were (as
// Dovecot's mail_fsync=optimized, whose index log is not fsynced, loses
// flag changes). A lost EXPUNGE brings the message back under its UID
// (it was answered only after its fsync, but other sessions may have
// seen it go): mail is not lost (Compact and the object sweep delete bytes
// only after an fsync of the log, so none that such a commit freed is gone
// with it: logDurable); a client without QRESYNC sees it again at
// its next UID FETCH, one with QRESYNC only after a full resynchronisation,
// since its MODSEQ is old. Dovecot behaves the same (its expunges are in
// the same unsynced index log). PostgreSQL needs none of this: its commit
// is visible only after its WAL flush (synchronous_commit).

// uidMarkStep and modseqMarkStep are how far a mark is raised past the
// number (see above).
const (
	uidMarkStep    = 100
	modseqMarkStep = 1000
)

// pastMarkWhere finds the mailboxes past their marks through the partial
// index mailboxes_past_mark (the same expression, so that SQLite uses it:
// the index holds only those mailboxes, so the test costs nothing).
const pastMarkWhere = `uid_next > uid_next_mark OR highest_modseq > modseq_mark`

// errPastMark: a NORMAL commit would take a mailbox past its marks; it
// is made FULL instead (writeNormal).
var errPastMark = fmt.Errorf("store: past the durable marks")

// changesPastMark returns the connection's count of rows changed so far
// (SQLite's total_changes(), to tell whether the transaction wrote
// anything) and whether the transaction leaves a mailbox past its marks:
// one statement for the two, on the writer at the end of each NORMAL
// commit (commitNormal).
func changesPastMark(ctx context.Context, tx wtx) (total int64, past bool, err error) {
	if err := tx.QueryRowContext(ctx, `SELECT total_changes(), EXISTS (SELECT 1 FROM mailboxes WHERE `+pastMarkWhere+`)`).Scan(&total, &past); err != nil {
		return 0, false, fmt.Errorf("store: marks: %w", err)
	}
	return total, past, nil
}

// raiseMarks raises the marks of the mailboxes past them, in a transaction
// that commits with synchronous=FULL.
func raiseMarks(ctx context.Context, tx wtx) error {
	_, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next_mark = max(uid_next_mark, uid_next + ?),
		modseq_mark = max(modseq_mark, highest_modseq + ?) WHERE `+pastMarkWhere, uidMarkStep, modseqMarkStep)
	if err != nil {
		return fmt.Errorf("store: raise marks: %w", err)
	}
	return nil
}

// jumpToMarks moves UIDNEXT and HIGHESTMODSEQ up to the marks (at Open).
// The UIDNEXT stays below 2^32-1, which no message may take.
func (s *Store) jumpToMarks() error {
	err := s.execImmediate(`UPDATE mailboxes SET uid_next = max(uid_next, min(uid_next_mark, 4294967295)),
		highest_modseq = max(highest_modseq, modseq_mark)
		WHERE uid_next < uid_next_mark OR highest_modseq < modseq_mark`)
	if err != nil {
		return fmt.Errorf("store: open: move UIDNEXT and HIGHESTMODSEQ past the durable marks: %w", err)
	}
	return nil
}

// lowerMarks brings the marks down to the numbers (at Close, once every
// commit is durable: this one is FULL, whose fsync covers all before it).
func (s *Store) lowerMarks() error {
	err := s.execImmediate(`UPDATE mailboxes SET uid_next_mark = uid_next, modseq_mark = highest_modseq
		WHERE uid_next_mark > uid_next OR modseq_mark > highest_modseq`)
	if err != nil {
		return fmt.Errorf("store: close: lower the durable marks: %w", err)
	}
	return nil
}

// execImmediate runs one write statement in a transaction begun with
// BEGIN IMMEDIATE (the writer's _txlock): a statement run alone reads
// first and then asks for the write lock, and when another process
// committed in between SQLite answers "database is locked" at once,
// without waiting (busy_timeout does not apply to a stale read). SQLite's
// fsync of the log failing in its commit stops the store (failedCommit).
func (s *Store) execImmediate(q string) error {
	tx, err := s.w.Begin()
	if err != nil {
		return err
	}
	if _, err := tx.Exec(q); err != nil {
		tx.Rollback()
		return err
	}
	return s.wal.failedCommit(tx.Commit())
}
