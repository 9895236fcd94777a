package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Mailbox is a folder of an account.
type Mailbox struct {
	ID        int64
	AccountID int64
	// Name is the full UTF-8 name, levels joined by the account's Delim.
	// "INBOX" is always spelled in capitals.
	Name string
	// SpecialUse is a space-separated list of RFC 6154 attributes such as
	// `\Sent`; the store only keeps it.
	SpecialUse    string
	Subscribed    bool
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	// Migration is "" for a mailbox not copied from an old server, else a
	// Mig* state; MigratedUID is the highest old UID copied so far and
	// OldName the mailbox's name on the old server.
	Migration   string
	MigratedUID uint32
	OldName     string
}

// MailboxOptions sets the initial state of a new mailbox. A nil
// *MailboxOptions means defaults.
type MailboxOptions struct {
	// UIDValidity and UIDNext as an old server had them; 0 means new ones.
	UIDValidity uint32
	UIDNext     uint32
	SpecialUse  string
	Subscribed  bool
	Migration   string
	OldName     string
}

// MailboxStatus counts a mailbox's messages.
type MailboxStatus struct {
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64
	UIDNext       uint32
	UIDValidity   uint32
	HighestModSeq uint64
}

// normName spells INBOX in capitals, as RFC 3501 wants it matched
// case-insensitively, and checks the name is usable.
func normName(name string) (string, error) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "\r\n\x00") || len(name) > 1000 {
		return "", fmt.Errorf("%w: mailbox name %q", ErrInvalid, name)
	}
	return name, nil
}

const mailboxCols = `id, account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq, mig_state, mig_last_uid, mig_old_name`

func scanMailbox(sc rowScanner) (*Mailbox, error) {
	var m Mailbox
	err := sc.Scan(&m.ID, &m.AccountID, &m.Name, &m.SpecialUse, &m.Subscribed, &m.UIDValidity, &m.UIDNext,
		&m.HighestModSeq, &m.Migration, &m.MigratedUID, &m.OldName)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// uidValidityTop is the highest UIDVALIDITY an account (the two
// parameters) ever gave a mailbox, also one since deleted (schema step
// uidvalidity_top), so that a new one is always higher.
const uidValidityTop = `max(coalesce((SELECT max(uid_validity) FROM mailboxes WHERE account_id = ?), 0),
	coalesce((SELECT top FROM uidvalidity_top WHERE account_id = ?), 0))`

// newMailboxID (SQLite) is the id a new mailbox takes: above every id a
// mailbox ever had (mailbox_id_top, schema step mailbox_id_top), not the
// highest present plus one, which SQLite's INTEGER PRIMARY KEY gives again
// after the mailbox holding it is deleted. A server process keeps state by
// mailbox id (the IMAP front end's SELECT state, brought up to date by
// Delta): a mailbox deleted and made again at the same id, with the same
// UIDVALIDITY (a migration adopts the old server's), would be taken for
// the old one. NULL, should the table be empty, lets SQLite choose.
// PostgreSQL's identity column never reuses an id.
const newMailboxID = `(SELECT max(top, coalesce((SELECT max(id) FROM mailboxes), 0)) + 1 FROM mailbox_id_top)`

func createMailbox(ctx context.Context, tx wtx, d *dialect, accountID int64, name string, o *MailboxOptions) (*Mailbox, error) {
	name, err := normName(name)
	if err != nil {
		return nil, err
	}
	if o == nil {
		o = &MailboxOptions{}
	}
	m := &Mailbox{AccountID: accountID, Name: name, SpecialUse: o.SpecialUse, Subscribed: o.Subscribed,
		UIDValidity: o.UIDValidity, UIDNext: max(o.UIDNext, 1), HighestModSeq: 1, Migration: o.Migration, OldName: o.OldName}
	if m.UIDValidity == 0 {
		// Time-based, and above any this account used, so that a mailbox
		// deleted and made again never repeats a UIDVALIDITY.
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT `+uidValidityTop, accountID, accountID).Scan(&top); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		v := uint32(time.Now().Unix())
		if top.Valid && uint32(top.Int64) >= v && top.Int64 < 1<<32-1 {
			v = uint32(top.Int64) + 1
		}
		m.UIDValidity = v
	}
	insert := `INSERT INTO mailboxes(account_id, name, special_use, subscribed, uid_validity, uid_next, mig_state, mig_old_name)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	if !d.postgres() {
		insert = `INSERT INTO mailboxes(id, account_id, name, special_use, subscribed, uid_validity, uid_next, mig_state, mig_old_name)
		VALUES(` + newMailboxID + `, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	}
	err = tx.QueryRowContext(ctx, insert, accountID, name, m.SpecialUse, boolInt(m.Subscribed), m.UIDValidity, m.UIDNext, m.Migration, m.OldName).Scan(&m.ID)
	if isUnique(err) {
		return nil, fmt.Errorf("mailbox %s: %w", name, ErrExists)
	} else if err != nil {
		return nil, fmt.Errorf("store: create mailbox: %w", err)
	}
	// A subscription kept from a mailbox once at this name applies to the
	// new one (schema step kept_subscriptions).
	if err := tx.QueryRowContext(ctx, `SELECT subscribed FROM mailboxes WHERE id = ?`, m.ID).Scan(&m.Subscribed); err != nil {
		return nil, fmt.Errorf("store: create mailbox: %w", err)
	}
	return m, nil
}

// CreateMailbox adds a mailbox to an account.
func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name string, opts *MailboxOptions) (*Mailbox, error) {
	var m *Mailbox
	err := s.write(ctx, func(tx wtx, ch *changes) error {
		var err error
		m, err = createMailbox(ctx, tx, s.d, accountID, name, opts)
		ch.account(accountID)
		return err
	})
	return m, err
}

// NewMailbox is one mailbox of CreateMailboxes.
type NewMailbox struct {
	Name string
	Opts *MailboxOptions
}

// Subscription is a mailbox name's subscription, set as SetSubscribed sets
// it.
type Subscription struct {
	Name       string
	Subscribed bool
}

// CreateMailboxes adds several mailboxes to an account in one transaction
// (one commit: a migration makes an account's folders so, where one commit
// each cost an fsync each), and sets subs in the same commit, as
// SetSubscribed would after (a migration takes INBOX's subscription from
// the old server so): all of it, or nothing and the error of the first
// mailbox that could not be made (wrapping ErrExists for a name taken).
// The mailboxes are returned in the order given.
func (s *Store) CreateMailboxes(ctx context.Context, accountID int64, boxes []NewMailbox, subs ...Subscription) ([]*Mailbox, error) {
	if len(boxes) == 0 && len(subs) == 0 {
		return nil, nil
	}
	subs = slices.Clone(subs)
	for i, sub := range subs {
		name, err := normName(sub.Name)
		if err != nil {
			return nil, err
		}
		subs[i].Name = name
	}
	var made []*Mailbox
	err := s.write(ctx, func(tx wtx, ch *changes) error {
		made = made[:0]
		for _, b := range boxes {
			m, err := createMailbox(ctx, tx, s.d, accountID, b.Name, b.Opts)
			if err != nil {
				return err
			}
			made = append(made, m)
		}
		for _, sub := range subs {
			if err := setSubscribed(ctx, tx, accountID, sub.Name, sub.Subscribed); err != nil {
				return err
			}
		}
		ch.account(accountID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return made, nil
}

// Mailbox returns an account's mailbox by name, or ErrNotFound.
func (s *Store) Mailbox(ctx context.Context, accountID int64, name string) (*Mailbox, error) {
	name, err := normName(name)
	if err != nil {
		return nil, fmt.Errorf("mailbox %q: %w", name, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One row by key, read without a goroutine to watch ctx (readRow):
	// every SELECT starts with it (TestReadStartsNoGoroutine).
	var m *Mailbox
	err = s.readRow(ctx, func(r *sql.Row) (err error) {
		m, err = scanMailbox(r)
		return err
	}, `SELECT `+mailboxCols+` FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %s: %w", name, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return m, nil
}

// MailboxByID returns a mailbox by ID, or ErrNotFound.
func (s *Store) MailboxByID(ctx context.Context, id int64) (*Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var m *Mailbox
	err := s.readRow(ctx, func(r *sql.Row) (err error) {
		m, err = scanMailbox(r)
		return err
	}, `SELECT `+mailboxCols+` FROM mailboxes WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return m, nil
}

// Mailboxes lists an account's mailboxes, INBOX first, then by name.
func (s *Store) Mailboxes(ctx context.Context, accountID int64) ([]*Mailbox, error) {
	return queryAll(ctx, s.r, scanMailbox, `SELECT `+mailboxCols+` FROM mailboxes WHERE account_id = ?
		ORDER BY name <> 'INBOX', name`, accountID)
}

// DeleteMailbox removes a mailbox and its messages. INBOX cannot be deleted.
// Child mailboxes are kept.
func (s *Store) DeleteMailbox(ctx context.Context, accountID int64, name string) error {
	name, err := normName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return fmt.Errorf("%w: INBOX cannot be deleted", ErrInvalid)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, name)
		if err != nil {
			return fmt.Errorf("store: delete mailbox: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("mailbox %s: %w", name, ErrNotFound)
		}
		ch.account(accountID)
		return nil
	})
}

// RenameMailbox renames a mailbox and its children (names below it with the
// account's separator). Renaming INBOX moves its messages to a new mailbox
// and leaves INBOX empty (RFC 3501 6.3.5). A name that is no mailbox but
// the parent of some (a level CREATE "a/b" left implied, as Dovecot does)
// renames its children; with no children either it is ErrNotFound.
func (s *Store) RenameMailbox(ctx context.Context, accountID int64, from, to string) error {
	from, err := normName(from)
	if err != nil {
		return err
	}
	to, err = normName(to)
	if err != nil {
		return err
	}
	if to == "INBOX" {
		return fmt.Errorf("mailbox INBOX: %w", ErrExists)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		ch.account(accountID)
		var id int64
		var delim string
		err := tx.QueryRowContext(ctx, `SELECT m.id, a.delim FROM mailboxes m JOIN accounts a ON a.id = m.account_id
			WHERE m.account_id = ? AND m.name = ?`, accountID, from).Scan(&id, &delim)
		if errors.Is(err, sql.ErrNoRows) {
			if err := impliedParent(ctx, tx, accountID, from, &delim); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if from == "INBOX" {
			dst, err := createMailbox(ctx, tx, s.d, accountID, to, &MailboxOptions{Subscribed: true})
			if err != nil {
				return err
			}
			uids, err := allUIDs(ctx, tx, id)
			if err != nil {
				return err
			}
			if _, err := copyMessages(ctx, tx, id, uids, dst.ID); err != nil {
				return err
			}
			if len(uids) == 0 {
				return nil
			}
			// INBOX stays, emptied: an expunge its sessions must learn of.
			_, _, err = expungeUIDs(ctx, tx, id, uids)
			return err
		}
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, to).Scan(&taken); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if taken > 0 {
			return fmt.Errorf("mailbox %s: %w", to, ErrExists)
		}
		if strings.HasPrefix(to, from+delim) {
			return fmt.Errorf("%w: cannot move %s below itself", ErrInvalid, from)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
			accountID, from, utf8.RuneCountInString(from+delim), from+delim) // substr counts characters
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		type ren struct {
			id   int64
			name string
		}
		var list []ren
		for rows.Next() {
			var r ren
			if err := rows.Scan(&r.id, &r.name); err != nil {
				rows.Close()
				return fmt.Errorf("store: %w", err)
			}
			list = append(list, r)
		}
		rows.Close()
		// A read that failed halfway must not pass for the end of the
		// list: the rename would leave some children behind.
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for _, r := range list {
			newName := to + strings.TrimPrefix(r.name, from)
			// A fresh UIDVALIDITY: clients must not take the renamed
			// mailbox's UIDs for those of a mailbox once at that name.
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ?, uid_validity = (SELECT `+uidValidityTop+` + 1) WHERE id = ?`,
				newName, accountID, accountID, r.id); isUnique(err) {
				return fmt.Errorf("mailbox %s: %w", newName, ErrExists)
			} else if err != nil {
				return fmt.Errorf("store: rename: %w", err)
			}
		}
		return nil
	})
}

// impliedParent sets delim to the account's separator when from is no
// mailbox but has mailboxes below it, and is ErrNotFound otherwise.
func impliedParent(ctx context.Context, tx wtx, accountID int64, from string, delim *string) error {
	if err := tx.QueryRowContext(ctx, `SELECT delim FROM accounts WHERE id = ?`, accountID).Scan(delim); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mailbox %s: %w", from, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var children int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?`,
		accountID, utf8.RuneCountInString(from+*delim), from+*delim).Scan(&children); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if children == 0 {
		return fmt.Errorf("mailbox %s: %w", from, ErrNotFound)
	}
	return nil
}

// SetSubscribed subscribes or unsubscribes a mailbox, or a name that is
// not a mailbox (RFC 3501 6.3.6: see KeptSubscriptions); unsubscribing a
// name that is neither subscribed nor a mailbox fails with ErrNotFound.
func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error {
	name, err := normName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		if err := setSubscribed(ctx, tx, accountID, name, subscribed); err != nil {
			return err
		}
		ch.account(accountID)
		return nil
	})
}

// setSubscribed is SetSubscribed's work in tx, for a normalized name.
func setSubscribed(ctx context.Context, tx wtx, accountID int64, name string, subscribed bool) error {
	res, err := tx.ExecContext(ctx, `UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?`, boolInt(subscribed), accountID, name)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// No such mailbox: the name alone is (un)subscribed.
		if err := setKeptSubscription(ctx, tx, accountID, name, subscribed); err != nil {
			return err
		}
	}
	return nil
}

// SetMailboxMigration records a mailbox's migration state and the highest
// old UID copied.
func (s *Store) SetMailboxMigration(ctx context.Context, mailboxID int64, state string, migratedUID uint32) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		return setMailboxMigration(ctx, tx, ch, mailboxID, state, migratedUID)
	})
}

func setMailboxMigration(ctx context.Context, tx wtx, ch *changes, mailboxID int64, state string, migratedUID uint32) error {
	res, err := tx.ExecContext(ctx, `UPDATE mailboxes SET mig_state = ?, mig_last_uid = max(mig_last_uid, ?) WHERE id = ?`, state, migratedUID, mailboxID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	}
	return nil
}

// Status counts a mailbox's messages.
func (s *Store) Status(ctx context.Context, mailboxID int64) (*MailboxStatus, error) {
	var st MailboxStatus
	err := s.r.QueryRowContext(ctx, `SELECT uid_next, uid_validity, highest_modseq,
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id),
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id AND NOT (lower(' ' || flags || ' ') LIKE '% \seen %' ESCAPE '!')),
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id AND lower(' ' || flags || ' ') LIKE '% \deleted %' ESCAPE '!'),
		(SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = m.id)
		FROM mailboxes m WHERE id = ?`, mailboxID).Scan(&st.UIDNext, &st.UIDValidity, &st.HighestModSeq,
		&st.Messages, &st.Unseen, &st.Deleted, &st.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &st, nil
}

// Usage is what an account holds: its mailboxes, their messages and the
// messages' total size.
type Usage struct {
	Folders  int
	Messages int64
	Bytes    int64
}

// Usages returns every account's Usage by account ID, in one query (an
// account with no mailbox is absent).
func (s *Store) Usages(ctx context.Context) (map[int64]Usage, error) {
	type row struct {
		account int64
		u       Usage
	}
	rows, err := queryAll(ctx, s.r, func(r rowScanner) (row, error) {
		var x row
		return x, r.Scan(&x.account, &x.u.Folders, &x.u.Messages, &x.u.Bytes)
	}, `SELECT mb.account_id, count(DISTINCT mb.id), count(m.id), coalesce(sum(m.size), 0)
		FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id GROUP BY mb.account_id`)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Usage, len(rows))
	for _, x := range rows {
		out[x.account] = x.u
	}
	return out, nil
}
