package pop3front

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mailferry/core/store"
)

// maildrop is a session's snapshot of the account's INBOX.
type maildrop struct {
	account  int64
	address  string
	created  time.Time // the account's, told apart from one made again
	mailbox  int64
	validity uint32
	items    []item
}

// item is one message of the snapshot.
type item struct {
	uid     uint32
	size    int64
	blob    string
	uidl    string
	deleted bool
}

// snapshotHook, when set (tests), is called as a snapshot begins, with
// its reads' context.
var snapshotHook func(ctx context.Context)

// openMaildrop takes the snapshot of acct's INBOX and gives every message
// its UIDL (see UIDLs). The store is read with ctx, written with wctx.
func openMaildrop(ctx, wctx context.Context, st *store.Store, acct *store.Account) (*maildrop, error) {
	if snapshotHook != nil {
		snapshotHook(ctx)
	}
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
	uidls, err := uidls(ctx, wctx, st, acct, mb, msgs)
	if err != nil {
		return nil, err
	}
	d := &maildrop{account: acct.ID, address: acct.Address, created: acct.Created, mailbox: mb.ID, validity: mb.UIDValidity,
		items: make([]item, len(msgs))}
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

// update removes the messages marked deleted (RFC 1939 UPDATE state), in
// one transaction, and only while they are the messages of the snapshot:
// the same account (not one deleted and made again under the same IDs),
// the same INBOX, the same bytes under each UID. IMAP sessions see them go
// as EXPUNGE. It returns how many were removed (a message another session
// removed first does not count).
func (d *maildrop) update(ctx context.Context, st *store.Store) (int, error) {
	seen := &store.Seen{AccountID: d.account, Created: d.created, MailboxID: d.mailbox, UIDValidity: d.validity,
		Blobs: map[uint32]string{}}
	for _, it := range d.items {
		if it.deleted {
			seen.Blobs[it.uid] = it.blob
		}
	}
	if len(seen.Blobs) == 0 {
		return 0, nil
	}
	gone, err := st.ExpungeSeen(ctx, seen)
	if err != nil {
		return 0, fmt.Errorf("pop3front: remove deleted messages: %w", err)
	}
	return len(gone), nil
}
