package pop3front

import (
	"context"
	"errors"
	"fmt"

	"mailferry/core/store"
)

// maildrop is a session's snapshot of the account's INBOX.
type maildrop struct {
	account int64
	address string
	mailbox int64
	items   []item
}

// item is one message of the snapshot.
type item struct {
	uid     uint32
	size    int64
	blob    string
	uidl    string
	deleted bool
}

// openMaildrop takes the snapshot of acct's INBOX and gives every message
// its UIDL (see UIDLs).
func openMaildrop(ctx context.Context, st *store.Store, acct *store.Account) (*maildrop, error) {
	mb, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if errors.Is(err, store.ErrNotFound) {
		// An account without an INBOX has an empty maildrop.
		return &maildrop{account: acct.ID, address: acct.Address}, nil
	} else if err != nil {
		return nil, err
	}
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	uidls, err := UIDLs(ctx, st, acct.ID, mb, msgs)
	if err != nil {
		return nil, err
	}
	d := &maildrop{account: acct.ID, address: acct.Address, mailbox: mb.ID, items: make([]item, len(msgs))}
	for i, m := range msgs {
		d.items[i] = item{uid: m.UID, size: m.Size, blob: m.BlobKey, uidl: uidls[m.UID]}
	}
	return d, nil
}

// stat counts the messages not marked deleted and their octets.
func (d *maildrop) stat() (n int, size int64) {
	for _, it := range d.items {
		if !it.deleted {
			n++
			size += it.size
		}
	}
	return n, size
}

// body reads a message's bytes; a message gone since the snapshot is an
// error wrapping store.ErrNotFound.
func (d *maildrop) body(ctx context.Context, st *store.Store, it *item) ([]byte, error) {
	m, err := st.Message(ctx, d.mailbox, it.uid)
	if err != nil {
		return nil, err
	}
	if m.BlobKey != it.blob {
		return nil, fmt.Errorf("message %d changed: %w", it.uid, store.ErrNotFound)
	}
	return st.Blob(ctx, m.BlobKey)
}

// update removes the messages marked deleted (RFC 1939 UPDATE state):
// \Deleted on exactly those UIDs, then an expunge of exactly those UIDs,
// so that IMAP sessions see them go. It returns how many were removed (a
// message another session removed first does not count).
func (d *maildrop) update(ctx context.Context, st *store.Store) (int, error) {
	var uids []uint32
	for _, it := range d.items {
		if it.deleted {
			uids = append(uids, it.uid)
		}
	}
	if len(uids) == 0 {
		return 0, nil
	}
	if _, err := st.StoreFlags(ctx, d.mailbox, uids, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		return 0, fmt.Errorf("pop3front: mark deleted: %w", err)
	}
	gone, err := st.Expunge(ctx, d.mailbox, uids)
	if err != nil {
		return 0, fmt.Errorf("pop3front: expunge: %w", err)
	}
	return len(gone), nil
}
