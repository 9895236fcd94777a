package pop3front

import (
	"context"
	"fmt"

	"mailferry/core/store"
)

// UIDLs gives each message of mb (an account's INBOX, msgs its messages)
// its POP3 unique id, by UID.
//
// A message whose bytes have the blob key of an old UIDL the migration kept
// (store.KeptUIDLs) and that no other message took gets that UIDL, and the
// match is recorded so that it never moves. Every other message gets
// "%08x%08x" of the mailbox's UIDVALIDITY and its UID; should that equal a
// kept UIDL of the account, a suffix "-1", "-2", … makes it unique, so new
// mail never takes a UIDL a POP3 client knows from the old server.
//
// A UIDL once given does not change: while a migrated account's old list
// is not read (store.UIDLsRead; reading it failed, or it comes later), the
// UIDLs made here are recorded as matched (store.PinUIDLs), so that the
// old list, read later, does not take their messages and make clients
// download them again.
func UIDLs(ctx context.Context, st *store.Store, acct *store.Account, mb *store.Mailbox, msgs []*store.Message) (map[uint32]string, error) {
	return uidls(ctx, ctx, st, acct, mb, msgs)
}

// uidls is UIDLs reading the store with ctx and writing it with wctx.
func uidls(ctx, wctx context.Context, st *store.Store, acct *store.Account, mb *store.Mailbox, msgs []*store.Message) (map[uint32]string, error) {
	accountID := acct.ID
	pin := false
	if acct.Migration != "" {
		read, err := st.UIDLsRead(ctx, accountID)
		if err != nil {
			return nil, err
		}
		pin = !read
	}
	kept, err := st.KeptUIDLs(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]string, len(msgs))
	taken := make(map[string]bool, len(kept))
	free := map[string][]string{} // blob key → unmatched UIDLs, in order
	for _, k := range kept {
		taken[k.UIDL] = true
		switch {
		case k.UID == 0:
			free[k.BlobKey] = append(free[k.BlobKey], k.UIDL)
		case k.MailboxID == mb.ID:
			out[k.UID] = k.UIDL
		}
	}
	match := map[string]uint32{}
	if len(free) > 0 {
		for _, m := range msgs {
			if _, ok := out[m.UID]; ok {
				continue
			}
			if l := free[m.BlobKey]; len(l) > 0 {
				out[m.UID] = l[0]
				match[l[0]] = m.UID
				free[m.BlobKey] = l[1:]
			}
		}
	}
	if err := st.MatchKeptUIDLs(wctx, accountID, mb.ID, match); err != nil {
		return nil, err
	}
	var pins []store.KeptUIDL
	for _, m := range msgs {
		if _, ok := out[m.UID]; ok {
			continue
		}
		u := fmt.Sprintf("%08x%08x", mb.UIDValidity, m.UID)
		for i := 1; taken[u]; i++ {
			u = fmt.Sprintf("%08x%08x-%d", mb.UIDValidity, m.UID, i)
		}
		out[m.UID] = u
		if pin {
			pins = append(pins, store.KeptUIDL{UIDL: u, BlobKey: m.BlobKey, MailboxID: mb.ID, UID: m.UID})
		}
	}
	if err := st.PinUIDLs(wctx, accountID, pins); err != nil {
		return nil, err
	}
	return out, nil
}
