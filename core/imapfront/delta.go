package imapfront

import (
	"slices"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// viewChanges is what changed in a view's mailbox since the MODSEQ the
// client knows, as sync needs it.
type viewChanges struct {
	unchanged bool
	highest   uint64
	maxUID    imap.UID // the highest UID of the view before
	gone      []uint32 // UIDs of the view no longer there
	fresh     []imap.UID
	changed   []store.UIDState
}

// goneUIDs returns the UIDs of view (ascending) that are in expunged and
// not present again, ascending: a binary search for each expunged UID,
// where a look-up of each of the view's UIDs in a map of them cost every
// poll after another session's EXPUNGE a pass over the whole mailbox.
func goneUIDs(view []imap.UID, expunged []uint32, present map[imap.UID]bool) []uint32 {
	var gone []uint32
	for _, u := range expunged {
		if _, ok := slices.BinarySearch(view, imap.UID(u)); ok && !present[imap.UID(u)] {
			gone = append(gone, u)
		}
	}
	slices.Sort(gone)
	return slices.Compact(gone)
}

// changes reads what changed since v.modseq. It reads only the changed
// rows and the expunged UIDs (store.Delta) and checks the result against
// the mailbox's message count; on a mismatch (an expunge nobody recorded)
// it reads the whole mailbox instead (store.Snapshot). fresh are the new
// UIDs above the view's highest, ascending; a new UID below it is kept in
// v.hidden.
func (v *view) changes() (*viewChanges, error) {
	ctx := v.s.ctx()
	var ch viewChanges
	if len(v.uids) > 0 {
		ch.maxUID = v.uids[len(v.uids)-1]
	}
	d, err := v.s.srv.st.Delta(ctx, v.mb.ID, v.modseq)
	if err != nil {
		return nil, err
	}
	if d.Unchanged {
		ch.unchanged = true
		return &ch, nil
	}
	ch.highest, ch.changed = d.HighestModSeq, d.Changed
	expunged := make(map[imap.UID]bool, len(d.Expunged))
	for _, u := range d.Expunged {
		expunged[imap.UID(u)] = true
	}
	present := make(map[imap.UID]bool, len(d.Changed))
	for _, c := range d.Changed {
		present[imap.UID(c.UID)] = true
	}
	ch.gone = goneUIDs(v.uids, d.Expunged, present)
	hidden := make(map[imap.UID]bool, len(v.hidden))
	for u := range v.hidden {
		if !expunged[u] || present[u] {
			hidden[u] = true
		}
	}
	for _, c := range d.Changed {
		u := imap.UID(c.UID)
		switch {
		case u > ch.maxUID:
			ch.fresh = append(ch.fresh, u)
		case v.seqOf(u) == 0:
			hidden[u] = true
		}
	}
	if len(v.uids)-len(ch.gone)+len(ch.fresh)+len(hidden) == d.Messages {
		v.hidden = hidden
		return &ch, nil
	}
	// The count does not add up: read the whole mailbox.
	snap, err := v.s.srv.st.Snapshot(ctx, v.mb.ID, v.modseq)
	if err != nil {
		return nil, err
	}
	if snap.Unchanged {
		ch = viewChanges{unchanged: true, maxUID: ch.maxUID}
		return &ch, nil
	}
	ch = viewChanges{highest: snap.HighestModSeq, maxUID: ch.maxUID, changed: snap.Changed}
	all := make(map[imap.UID]bool, len(snap.UIDs))
	for _, u := range snap.UIDs {
		all[imap.UID(u)] = true
	}
	for _, u := range v.uids {
		if !all[imap.UID(u)] {
			ch.gone = append(ch.gone, uint32(u))
		}
	}
	clear(v.hidden)
	for _, u := range snap.UIDs {
		switch uid := imap.UID(u); {
		case uid > ch.maxUID:
			ch.fresh = append(ch.fresh, uid)
		case v.seqOf(uid) == 0:
			v.hidden[uid] = true
		}
	}
	return &ch, nil
}
