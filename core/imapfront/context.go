package imapfront

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// CONTEXT=SEARCH (RFC 5267 4): SEARCH's PARTIAL result option and results
// kept up to date (UPDATE, ADDTO/REMOVEFROM, CANCELUPDATE).
//
// An UPDATE search is kept on the view (it ends with the selected mailbox)
// with the UIDs it matched. It learns of changes from what the session
// already tells the client, never from a feed of its own: the sync of the
// view (view.sync: another session's STORE, APPEND, COPY or EXPUNGE read
// through the store's Delta), the session's own STORE (changeFlags) and
// the expunges it tells (tellExpunged). Only the messages that changed are
// matched again, each read at most once for all the session's updates,
// and its bytes only when a key that needs them is reached (searchMsg's
// lazy load): a change costs what searching those messages costs, never a
// search of the mailbox.

// maxSearchUpdates is how many UPDATE searches a session keeps at once, as
// Dovecot 2.3 (CLIENT_MAX_SEARCH_UPDATES): one more is answered untagged
// NO [NOUPDATE "tag"] and runs once, without updates (RFC 5267 4.3.1).
// Each costs a match of every changed message and, at most, a UID per
// message of the mailbox.
const maxSearchUpdates = 10

// searchUpdate is a search kept up to date for the client.
type searchUpdate struct {
	tag      string
	uid      bool // UID SEARCH: ADDTO and REMOVEFROM carry UIDs
	criteria imap.SearchCriteria
	needRaw  bool
	members  []imap.UID // matched, as the client was told; ascending
}

// searchUpdateEvaluations counts the messages matched again for UPDATE
// searches, and searchUpdateLoads the message bodies read for them (tests).
var searchUpdateEvaluations, searchUpdateLoads atomic.Int64

// startUpdate registers an UPDATE search whose result is found (UIDs,
// ascending): the criteria after staticCriteria, sequence numbers made the
// UIDs they named (a result is kept by message, RFC 5267 4.3). It returns
// why it refused (too many updates), or "".
func (v *view) startUpdate(tag string, uid bool, criteria *imap.SearchCriteria, found imap.UIDSet) string {
	if len(v.updates) >= maxSearchUpdates {
		return "Too many updating searches (at most 10 per session): this one is not updated"
	}
	c := v.uidCriteria(criteria)
	u := &searchUpdate{tag: tag, uid: uid, criteria: c, needRaw: criteriaNeedRaw(&c)}
	if nums, ok := found.Nums(); ok {
		u.members = nums
	}
	v.updates = append(v.updates, u)
	return ""
}

// hasUpdate reports whether an UPDATE search of that tag is running.
func (v *view) hasUpdate(tag string) bool {
	for _, u := range v.updates {
		if u.tag == tag {
			return true
		}
	}
	return false
}

// uidCriteria copies search criteria, their sequence number sets made the
// UIDs they name in the view.
func (v *view) uidCriteria(c *imap.SearchCriteria) imap.SearchCriteria {
	out := *c
	out.SeqNum = nil
	out.UID = slices.Clone(c.UID)
	for _, set := range c.SeqNum {
		var uids imap.UIDSet
		for _, r := range set {
			a, b := r.Start, min(r.Stop, uint32(len(v.uids)))
			for s := max(a, 1); s <= b; s++ {
				uids.AddNum(v.uids[s-1])
			}
		}
		if uids == nil {
			uids = imap.UIDSet{} // names no message
		}
		out.UID = append(out.UID, uids)
	}
	out.Not = make([]imap.SearchCriteria, len(c.Not))
	for i := range c.Not {
		out.Not[i] = v.uidCriteria(&c.Not[i])
	}
	out.Or = make([][2]imap.SearchCriteria, len(c.Or))
	for i := range c.Or {
		out.Or[i] = [2]imap.SearchCriteria{v.uidCriteria(&c.Or[i][0]), v.uidCriteria(&c.Or[i][1])}
	}
	return out
}

var _ imapserver.SessionSearchContext = (*session)(nil)

// CancelUpdate implements imapserver.SessionSearchContext (RFC 5267
// 4.3.5): every tag must name an update, else none is cancelled.
func (s *session) CancelUpdate(tags []string) error {
	v := s.sel
	for _, tag := range tags {
		if v == nil || !v.hasUpdate(tag) {
			return imapErr("", "Unknown tag %q: no updating search of that tag", tag)
		}
	}
	v.updates = slices.DeleteFunc(v.updates, func(u *searchUpdate) bool {
		return slices.Contains(tags, u.tag)
	})
	return nil
}

// updatesExpunged tells the UPDATE searches holding expunged messages
// (REMOVEFROM), before the EXPUNGE responses: sequence numbers are those
// the client knows until then.
func (v *view) updatesExpunged(gone []uint32) error {
	if len(v.updates) == 0 || v.s.conn == nil {
		return nil
	}
	sorted := make([]imap.UID, len(gone))
	for i, g := range gone {
		sorted[i] = imap.UID(g)
	}
	slices.Sort(sorted)
	for _, u := range v.updates {
		var removed []imap.UID
		u.members, _, removed = mergeMembers(u.members, nil, sorted)
		if len(removed) == 0 {
			continue
		}
		var remove imap.UIDSet
		var seqs imap.SeqSet
		for _, uid := range removed {
			remove.AddNum(uid)
			if seq := v.seqOf(uid); seq != 0 {
				seqs.AddNum(seq)
			}
		}
		var err error
		if u.uid {
			err = v.s.conn.WriteSearchUpdate(u.tag, true, remove, nil)
		} else if len(seqs) > 0 {
			err = v.s.conn.WriteSearchUpdate(u.tag, false, seqs, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mergeMembers returns members (ascending, no duplicate) with add put in
// and drop taken out (both ascending), in one pass: a change of n
// messages costs O(len(members) + n), not a copy of the rest of members
// per message (a STORE or EXPUNGE of every message of a large mailbox
// was quadratic: review1). added and removed are what changed, ascending.
// members' array is reused when add is empty.
func mergeMembers(members, add, drop []imap.UID) (out, added, removed []imap.UID) {
	if len(add)+len(drop) <= 16 {
		// A few: each found by binary search, as a change of one
		// message costs nothing where none enters or leaves.
		for _, u := range add {
			if i, ok := slices.BinarySearch(members, u); !ok && !slices.Contains(drop, u) {
				members = slices.Insert(members, i, u)
				added = append(added, u)
			}
		}
		for _, u := range drop {
			if i, ok := slices.BinarySearch(members, u); ok {
				members = slices.Delete(members, i, i+1)
				removed = append(removed, u)
			}
		}
		return members, added, removed
	}
	if len(add) == 0 {
		out = members[:0]
	} else {
		out = make([]imap.UID, 0, len(members)+len(add))
	}
	i, j, k := 0, 0, 0
	for i < len(members) || j < len(add) {
		var uid imap.UID
		fromAdd := false
		switch {
		case j >= len(add) || (i < len(members) && members[i] < add[j]):
			uid = members[i]
			i++
		case i >= len(members) || add[j] < members[i]:
			uid, fromAdd = add[j], true
			j++
		default: // in both: already a member
			uid = members[i]
			i++
			j++
		}
		for k < len(drop) && drop[k] < uid {
			k++
		}
		if k < len(drop) && drop[k] == uid {
			if !fromAdd {
				removed = append(removed, uid)
			}
			continue
		}
		if fromAdd {
			added = append(added, uid)
		}
		out = append(out, uid)
	}
	return out, added, removed
}

// updatesChanged matches the messages of uids (those not in the view are
// skipped) again against each UPDATE search and tells the client what
// entered (ADDTO) and left (REMOVEFROM) each result. A message whose
// bytes cannot be read is left as it was and tried at its next change.
func (v *view) updatesChanged(uids []imap.UID) error {
	if len(v.updates) == 0 || v.s.conn == nil || len(uids) == 0 {
		return nil
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	uids = slices.Compact(uids)
	var ts []target
	for _, u := range uids {
		if seq := v.seqOf(u); seq != 0 {
			ts = append(ts, target{seq: seq, uid: u})
		}
	}
	if len(ts) == 0 {
		return nil
	}
	// What enters and leaves each result, ascending; members are changed
	// once at the end (mergeMembers), each message is looked up in them
	// as they were (a message comes once).
	type change struct{ add, remove []target }
	changes := make([]change, len(v.updates))
	now := time.Now()
runs:
	for _, run := range v.chunks(ts) {
		msgs, err := v.messages(run, false, false)
		if err != nil {
			// Those of the runs before are told; these at their next change.
			v.s.srv.log.Warn("imapfront: search update", "account", v.s.address(), "mailbox", v.mb.Name, "err", err)
			break runs
		}
		for i, m := range msgs {
			if m == nil {
				continue
			}
			searchUpdateEvaluations.Add(1)
			t := run[i]
			sm := &searchMsg{m: m, seq: t.seq, recent: v.isRecent(t.uid), now: now}
			var loadErr error
			sm.load = func() []byte {
				searchUpdateLoads.Add(1)
				raw, err := v.s.srv.st.Blob(v.s.readCtx(), m.BlobKey)
				if err != nil {
					loadErr = err
				}
				return raw
			}
			for k, u := range v.updates {
				match := sm.matchSafe(&u.criteria)
				if loadErr != nil {
					v.s.srv.log.Warn("imapfront: search update", "account", v.s.address(), "mailbox", v.mb.Name, "uid", t.uid, "err", loadErr)
					// Left as it was for this search and those after
					// (those before did not need its bytes).
					break
				}
				_, member := slices.BinarySearch(u.members, t.uid)
				switch {
				case match && !member:
					changes[k].add = append(changes[k].add, t)
				case !match && member:
					changes[k].remove = append(changes[k].remove, t)
				}
			}
		}
	}
	uidsOf := func(ts []target) []imap.UID {
		out := make([]imap.UID, len(ts))
		for i, t := range ts {
			out[i] = t.uid
		}
		return out
	}
	for k, u := range v.updates {
		u.members, _, _ = mergeMembers(u.members, uidsOf(changes[k].add), uidsOf(changes[k].remove))
		if err := v.writeUpdate(u, changes[k].remove, changes[k].add); err != nil {
			return err
		}
	}
	return nil
}

// writeUpdate writes one update's REMOVEFROM and ADDTO.
func (v *view) writeUpdate(u *searchUpdate, remove, add []target) error {
	if len(remove) == 0 && len(add) == 0 {
		return nil
	}
	set := func(ts []target) imap.NumSet {
		if u.uid {
			var s imap.UIDSet
			for _, t := range ts {
				s.AddNum(t.uid)
			}
			return s
		}
		var s imap.SeqSet
		for _, t := range ts {
			s.AddNum(t.seq)
		}
		return s
	}
	return v.s.conn.WriteSearchUpdate(u.tag, u.uid, set(remove), set(add))
}

// partialOf returns the numbers at positions r.First to r.Last (1-based)
// of found, in the order found (RFC 5267 4.4).
func partialOf(found []uint32, r *imap.SearchPartialRange, uid bool) imap.NumSet {
	var seqs imap.SeqSet
	var uids imap.UIDSet
	if uint64(r.First) <= uint64(len(found)) {
		end := min(uint64(r.Last), uint64(len(found)))
		for _, n := range found[r.First-1 : end] {
			if uid {
				uids.AddNum(imap.UID(n))
			} else {
				seqs.AddNum(n)
			}
		}
	}
	if uid {
		return uids
	}
	return seqs
}
