package imapfront

import (
	"fmt"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// CONDSTORE and QRESYNC (RFC 7162). Every message has a MODSEQ and every
// mailbox a HIGHESTMODSEQ in the store; expunged UIDs are kept with the
// MODSEQ of their expunge (store.Expunged). A session turns CONDSTORE on
// with any CONDSTORE-enabling command (RFC 7162 3.1): ENABLE, SELECT
// (CONDSTORE), STATUS (HIGHESTMODSEQ), FETCH MODSEQ or CHANGEDSINCE,
// SEARCH MODSEQ or STORE UNCHANGEDSINCE; from then on every FETCH response
// it did not ask for carries MODSEQ. After ENABLE QRESYNC, expunges are
// told as VANISHED by UID instead of EXPUNGE by number.

// condStore reports whether CONDSTORE is on for the session.
func (s *session) condStore() bool {
	return s.condstore || (s.conn != nil && s.conn.EnabledCaps().Has(imap.CapCondStore))
}

// enableCondStore turns CONDSTORE on for a CONDSTORE-enabling command
// (RFC 7162 3.1). The first one while a mailbox is selected is answered
// with an untagged OK [HIGHESTMODSEQ] too, as Dovecot does (imaptest
// "esearch-condstore"): announceHighestModSeq, at the command's poll.
func (s *session) enableCondStore() {
	if !s.condStore() && s.sel != nil {
		s.condstoreAnnounce = true
	}
	s.condstore = true
}

// announceHighestModSeq sends the selected mailbox's HIGHESTMODSEQ as the
// session knows it, once, after enableCondStore asked for it.
func (s *session) announceHighestModSeq(w *imapserver.UpdateWriter) error {
	if !s.condstoreAnnounce || s.sel == nil {
		return nil
	}
	s.condstoreAnnounce = false
	return w.WriteHighestModSeq(s.sel.modseq)
}

// qresync reports whether the client enabled QRESYNC.
func (s *session) qresync() bool {
	return s.conn != nil && s.conn.EnabledCaps().Has(imap.CapQResync)
}

// tellExpunged drops UIDs from the view and tells the client: VANISHED
// after ENABLE QRESYNC, else EXPUNGE by sequence number.
func (v *view) tellExpunged(uids []uint32, expunge func(uint32) error, vanish func(imap.UIDSet) error) error {
	if len(uids) == 0 {
		return nil
	}
	// Searches kept up to date lose them first (context.go).
	if err := v.updatesExpunged(uids); err != nil {
		return err
	}
	if !v.s.qresync() {
		return v.removeUIDs(uids, expunge)
	}
	var set imap.UIDSet
	for _, u := range uids {
		if v.seqOf(imap.UID(u)) != 0 {
			set.AddNum(imap.UID(u))
		}
	}
	if err := v.removeUIDs(uids, func(uint32) error { return nil }); err != nil {
		return err
	}
	return vanish(set)
}

// vanished writes VANISHED (EARLIER) for the UIDs of uidSet (where "*"
// means any UID) expunged after sinceModSeq and not in the mailbox now
// (RFC 7162 3.2.6). When sinceModSeq is older than the store's record of
// expunges (a mailbox from before it kept them), every UID of uidSet below
// UIDNEXT that is not in the mailbox is sent: VANISHED (EARLIER) may name
// UIDs the client never saw, never omit one it did.
func (s *session) vanished(w *imapserver.FetchWriter, uidSet imap.UIDSet, sinceModSeq uint64) error {
	v := s.sel
	from, err := s.srv.st.ExpungeHistory(s.ctx(), v.mb.ID)
	if err != nil {
		return s.storeErr(err, "FETCH")
	}
	var set imap.UIDSet
	if sinceModSeq < from {
		snap, err := s.srv.st.Snapshot(s.ctx(), v.mb.ID, 0)
		if err != nil {
			return s.storeErr(err, "FETCH")
		}
		set = absentUIDs(uidSet, snap.UIDs, snap.UIDNext)
	} else {
		gone, err := s.srv.st.Expunged(s.ctx(), v.mb.ID, sinceModSeq)
		if err != nil {
			return s.storeErr(err, "FETCH")
		}
		for _, u := range gone {
			if v.seqOf(imap.UID(u)) == 0 && uidSetHas(uidSet, imap.UID(u)) {
				set.AddNum(imap.UID(u))
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	return w.WriteVanished(set)
}

// absentUIDs returns the UIDs of set ("*" being UIDNEXT-1) below uidNext
// that are not in present (ascending), as ranges.
func absentUIDs(set imap.UIDSet, present []uint32, uidNext uint32) imap.UIDSet {
	var out imap.UIDSet
	if uidNext <= 1 {
		return out
	}
	last := uidNext - 1
	for _, r := range set {
		a, b := staticRange(uint32(r.Start), uint32(r.Stop), last)
		b = min(b, last)
		if a == 0 {
			a = 1
		}
		i := sort.Search(len(present), func(i int) bool { return present[i] >= a })
		for a <= b {
			if i < len(present) && present[i] <= b {
				if present[i] > a {
					out.AddRange(imap.UID(a), imap.UID(present[i]-1))
				}
				a = present[i] + 1
				i++
				continue
			}
			out.AddRange(imap.UID(a), imap.UID(b))
			break
		}
	}
	return out
}

// uidSetHas reports whether a UID set holds uid, "*" being any UID.
func uidSetHas(set imap.UIDSet, uid imap.UID) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start, stop = stop, start
		}
		if stop != 0 && start > stop {
			start, stop = stop, start
		}
		if uid >= start && (stop == 0 || uid <= stop) {
			return true
		}
	}
	return false
}

// changeFlags runs STORE (RFC 3501 6.4.6), conditional with UNCHANGEDSINCE
// (RFC 7162 3.1.3): messages changed since are left alone and named in the
// tagged OK's MODIFIED code, by UID for UID STORE. It answers FLAGS unless
// .SILENT, with MODSEQ when CONDSTORE is on, and then also after .SILENT
// for the messages this STORE changed.
func (s *session) changeFlags(w *imapserver.FetchWriter, numSet imap.NumSet, ts []target, op store.FlagOp, fl []string, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	v := s.sel
	var since *uint64
	if options != nil && options.Conditional {
		s.enableCondStore()
		since = &options.UnchangedSince
	}
	res, err := s.srv.st.StoreFlagsUnchangedSince(s.ctx(), v.mb.ID, uidsOf(ts), op, fl, since)
	if err != nil {
		return s.storeErr(err, "STORE")
	}
	if err := v.announceFlags(w, fl); err != nil {
		return err
	}
	cond := s.condStore()
	for _, m := range res.Messages {
		uid := imap.UID(m.UID)
		v.reported[uid] = max(v.reported[uid], m.ModSeq)
		changed := res.ModSeq != 0 && m.ModSeq == res.ModSeq
		if flags.Silent && !(cond && changed) {
			continue
		}
		seq := v.seqOf(uid)
		if seq == 0 {
			continue
		}
		rw := w.CreateMessage(seq)
		rw.WriteUID(uid)
		if !flags.Silent {
			rw.WriteFlags(v.flags(uid, m.Flags))
		}
		if cond {
			rw.WriteModSeq(m.ModSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if len(v.updates) > 0 {
		// Searches kept up to date are told of this STORE in its own
		// answer (context.go).
		// The view's sync then skips them (view.matched) unless changed
		// again since.
		stored := make([]imap.UID, len(res.Messages))
		if v.matched == nil {
			v.matched = map[imap.UID]uint64{}
		}
		for i, m := range res.Messages {
			stored[i] = imap.UID(m.UID)
			v.matched[imap.UID(m.UID)] = max(v.matched[imap.UID(m.UID)], m.ModSeq)
		}
		if err := v.updatesChanged(stored); err != nil {
			return err
		}
	}
	v.ownStore(res)
	if len(res.Modified) == 0 {
		return nil
	}
	sort.Slice(res.Modified, func(i, j int) bool { return res.Modified[i] < res.Modified[j] })
	var set imap.NumSet
	if _, byUID := numSet.(imap.UIDSet); byUID {
		var us imap.UIDSet
		for _, u := range res.Modified {
			us.AddNum(imap.UID(u))
		}
		set = us
	} else {
		var ss imap.SeqSet
		for _, u := range res.Modified {
			if seq := v.seqOf(imap.UID(u)); seq != 0 {
				ss.AddNum(seq)
			}
		}
		set = ss
	}
	return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode(fmt.Sprintf("MODIFIED %v", set)), Text: "Conditional STORE failed"}
}
