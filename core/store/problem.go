package store

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A CopyProblem is a message the old server could not serve to the
// migration engine: its FETCH was answered NO or BAD, or with bytes the
// IMAP parser refused, also when asked for alone. The rest of the mailbox
// was copied; a later catch-up run asks for the message again and, once it
// is copied, the problem is cleared. Problems belong to the local mailbox
// the message was to go to and go with it. OldUID 0 is a whole folder the
// old server would not open (or whose UIDVALIDITY changed): the other
// folders were copied; a later run tries it again.
type CopyProblem struct {
	AccountID int64  `json:"-"`
	MailboxID int64  `json:"-"`
	Mailbox   string `json:"mailbox"` // the old server's name of the mailbox
	OldUID    uint32 `json:"old_uid"`
	// Words is what went wrong, in the server's words where it had any
	// (e.g. `NO [SERVERBUG] Message file is damaged`).
	Words string `json:"words"`
	// Tries counts the runs that could not copy the message.
	Tries     int       `json:"tries"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// maxProblemWords bounds what is kept of a server's words and of the old
// mailbox name: they come from the old server (or from a user, who names
// folders there) and are shown to the admin.
const maxProblemWords = 500

func problemWords(s string) string { return Printable(s, maxProblemWords) }

// Printable makes text from outside (an old server's words, a folder name
// a user chose, an error that quotes them) safe to show to an admin in a
// terminal or a window: invalid UTF-8 becomes U+FFFD; control characters
// (C0, DEL and C1, which terminals read as escape sequences), line and
// paragraph separators and the bidirectional controls (which reorder what
// is shown) become a space; what is longer than max bytes is cut at a
// character boundary and ends with "…" (max <= 0: no bound).
func Printable(s string, max int) string {
	if max > 0 && len(s) > 4*max {
		s = s[:4*max] // the rest would be cut anyway
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || isBidiControl(r) {
			return ' '
		}
		return r
	}, s)
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// isBidiControl reports the Unicode bidirectional formatting characters
// (marks, embeddings, overrides and isolates).
func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}

// What names what could not be copied: "INBOX UID 4", or "folder
// Damaged (all of it)" for a whole folder (OldUID 0).
func (p CopyProblem) What() string {
	if p.OldUID == 0 {
		return fmt.Sprintf("folder %s (all of it)", p.Mailbox)
	}
	return fmt.Sprintf("%s UID %d", p.Mailbox, p.OldUID)
}

// RecordCopyProblem records (or, when it is known already, counts one more
// try of) a message of mailboxID that the old server could not serve.
func (s *Store) RecordCopyProblem(ctx context.Context, mailboxID int64, oldMailbox string, oldUID uint32, words string) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		accountID, err := mailboxAccount(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		if _, err := tx.ExecContext(ctx, `
INSERT INTO copy_problems(mailbox_id, account_id, old_mailbox, old_uid, words, tries, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT(mailbox_id, old_uid) DO UPDATE SET words = excluded.words, old_mailbox = excluded.old_mailbox,
	tries = copy_problems.tries + 1, last_seen = excluded.last_seen`,
			mailboxID, accountID, problemWords(oldMailbox), oldUID, problemWords(words), now, now); err != nil {
			return fmt.Errorf("store: copy problem: %w", err)
		}
		ch.account(accountID)
		return nil
	})
}

// ClearCopyProblem forgets the problem of mailboxID's old UID (it was
// copied after all, or is gone from the old server). No such problem is no
// error.
func (s *Store) ClearCopyProblem(ctx context.Context, mailboxID int64, oldUID uint32) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM copy_problems WHERE mailbox_id = ? AND old_uid = ?`, mailboxID, oldUID)
		if err != nil {
			return fmt.Errorf("store: copy problem: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			accountID, err := mailboxAccount(ctx, tx, mailboxID)
			if err != nil {
				return err
			}
			ch.account(accountID)
		}
		return nil
	})
}

const problemCols = `account_id, mailbox_id, old_mailbox, old_uid, words, tries, first_seen, last_seen`

func scanProblem(r rowScanner) (CopyProblem, error) {
	var p CopyProblem
	var first, last int64
	err := r.Scan(&p.AccountID, &p.MailboxID, &p.Mailbox, &p.OldUID, &p.Words, &p.Tries, &first, &last)
	p.FirstSeen, p.LastSeen = time.UnixMilli(first), time.UnixMilli(last)
	return p, err
}

// CopyProblems lists the account's copy problems by mailbox and old UID.
func (s *Store) CopyProblems(ctx context.Context, accountID int64) ([]CopyProblem, error) {
	return queryAll(ctx, s.r, scanProblem, `SELECT `+problemCols+` FROM copy_problems
		WHERE account_id = ? ORDER BY old_mailbox, old_uid`, accountID)
}

// MailboxCopyProblems lists the copy problems of one mailbox by old UID.
func (s *Store) MailboxCopyProblems(ctx context.Context, mailboxID int64) ([]CopyProblem, error) {
	return queryAll(ctx, s.r, scanProblem, `SELECT `+problemCols+` FROM copy_problems
		WHERE mailbox_id = ? ORDER BY old_uid`, mailboxID)
}

// CopyProblemsByAccount lists every account's copy problems (for a status
// of all accounts in one query), by account ID.
func (s *Store) CopyProblemsByAccount(ctx context.Context) (map[int64][]CopyProblem, error) {
	all, err := queryAll(ctx, s.r, scanProblem, `SELECT `+problemCols+` FROM copy_problems
		ORDER BY account_id, old_mailbox, old_uid`)
	if err != nil {
		return nil, err
	}
	out := map[int64][]CopyProblem{}
	for _, p := range all {
		out[p.AccountID] = append(out[p.AccountID], p)
	}
	return out, nil
}
