package imapfront

import (
	"errors"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// view is a session's snapshot of its selected mailbox: message sequence
// number i+1 is uids[i]. It changes only as the client is told.
type view struct {
	s        *session
	mb       *store.Mailbox
	readOnly bool
	uids     []imap.UID
	// modseq is the mailbox HIGHESTMODSEQ up to which the client knows
	// every change.
	modseq uint64
	watch  *store.Watcher
	// told is set when the watcher fired since the last sync, which then
	// asks it whether that is news (store.Watcher.Changed) before it
	// reads the store.
	told bool
	// dirty is set when a change may be waiting (the watcher told of one
	// above modseq, or expunges or new messages had to be held back).
	dirty bool
	// reported holds, per UID, the MODSEQ whose flags the client was
	// already sent (by this session's own STORE or FETCH), so that sync does
	// not send them again.
	reported  map[imap.UID]uint64
	searchRes imap.UIDSet
	// updates are the searches kept up to date for the client (RFC 5267
	// CONTEXT=SEARCH, context.go); matched holds, per UID, the MODSEQ at
	// which the session's own STORE matched the message again for them,
	// so that sync does not do it again (cleared with reported).
	updates []*searchUpdate
	matched map[imap.UID]uint64
	// recent holds the UIDs recent to this session (recent.go).
	recent map[imap.UID]bool
	// keywords are the flags announced in FLAGS (keywords.go).
	keywords *keywordSet
	// hidden holds the UIDs of messages that arrived below the highest UID
	// the client knows (a migration filling in old UIDs): they are not
	// numbered until the next SELECT (see changes).
	hidden map[imap.UID]bool
	// freshHeld is when new messages were first held back from a FETCH,
	// STORE or SEARCH because their \Recent claim would have waited for
	// the writer (sync); zero when none are held.
	freshHeld time.Time
	// claimed holds the UIDs this session's APPENDs claimed as recent
	// that have not come into the view yet (recent.go, ownClaim).
	claimed []uidRange
	// ownDelete is set by the session's DELETE of this mailbox until the
	// poll after it (gone.go).
	ownDelete bool
}

// freshDeferBound bounds how long new messages are held back from a
// session's FETCH, STORE and SEARCH answers (view.sync): after it, the
// next one waits for the claim.
const freshDeferBound = time.Second

func stack() string { return string(debug.Stack()) }

// openView reads mailbox mb's messages (selectCache) and makes them the
// session's view, with its keywords announced; it returns the state read.
func (s *session) openView(mb *store.Mailbox, readOnly bool) (*view, *mailboxState, error) {
	// Watch first: a change committed after the snapshot then always fires.
	// The watcher is of this mailbox: a change of another mailbox's
	// messages does not make the session's next command read the store.
	w := s.srv.st.WatchMailbox(s.acct.ID, mb.ID)
	st, err := s.srv.selects.state(s.readCtx(), s.srv.st, mb.ID)
	if err != nil {
		w.Close()
		return nil, nil, s.storeErr(err, "SELECT")
	}
	v := &view{s: s, mb: mb, readOnly: readOnly, modseq: st.highest, watch: w, reported: map[imap.UID]uint64{},
		keywords: newKeywordSet(), hidden: map[imap.UID]bool{}}
	v.uids = make([]imap.UID, len(st.msgs))
	for i, m := range st.msgs {
		v.uids[i] = imap.UID(m.uid)
	}
	st.announce(v.keywords)
	return v, st, nil
}

func (v *view) close() {
	if v.watch != nil {
		v.watch.Close()
		v.watch = nil
	}
}

// seqOf returns a UID's sequence number, or 0.
func (v *view) seqOf(uid imap.UID) uint32 {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	if i < len(v.uids) && v.uids[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

// updateWriter is what sync writes to (imapserver.UpdateWriter).
type updateWriter interface {
	flagsWriter
	WriteExpunge(seqNum uint32) error
	WriteVanished(uids imap.UIDSet) error
	WriteNumMessages(n uint32) error
	WriteNumRecent(n uint32) error
	WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag) error
	WriteMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64) error
}

// sync tells the client what changed in the mailbox since it last knew:
// EXPUNGE (when allowed), EXISTS, then FETCH FLAGS. New messages whose UID
// is below the highest the client knows (a migration filling in old UIDs)
// cannot be numbered after it, so they appear on the next SELECT.
//
// It reads the store only when the watcher told of a change above the
// MODSEQ the view knows, or of one whose MODSEQ it was not told (the
// account's mailboxes, another process's commit), or when changes were
// held back: a poll after a change the session has already read (its
// own, or one it read before it was told: a commit is seen before the
// fsync after which it is told) runs no statement.
func (v *view) sync(w updateWriter, allowExpunge bool) error {
	select {
	case _, ok := <-v.watch.C:
		if ok {
			v.told = true
		}
	default:
	}
	if v.told {
		v.told = false
		if v.watch.Changed(v.modseq) {
			v.dirty = true
		}
	}
	if !v.dirty {
		return nil
	}
	ch, err := v.changes()
	if errors.Is(err, store.ErrNotFound) {
		// The mailbox was deleted: the session ends (gone.go).
		return v.deleted()
	} else if err != nil {
		// Not fatal to the command that just ran: try again next time.
		v.s.srv.log.Warn("imapfront: mailbox sync", "account", v.s.address(), "mailbox", v.mb.Name, "err", err)
		return nil
	}
	if ch.unchanged || len(ch.fresh) == 0 {
		// No new message is held back (those held before went): a hold
		// that ended must not make the next new message's command wait.
		v.freshHeld = time.Time{}
	}
	if ch.unchanged {
		v.dirty = false
		return nil
	}
	maxUID, gone, fresh := ch.maxUID, ch.gone, ch.fresh
	// New keywords are announced before any message shows them.
	for _, c := range ch.changed {
		if err := v.announceFlags(w, c.Flags); err != nil {
			return err
		}
	}
	held := false
	if len(gone) > 0 {
		if allowExpunge {
			if err := v.tellExpunged(gone, w.WriteExpunge, w.WriteVanished); err != nil {
				return err
			}
		} else {
			held = true
		}
	}
	if len(fresh) > 0 {
		// New messages come with their \Recent claim, a write. A FETCH,
		// STORE or SEARCH (allowExpunge false) need not report new
		// messages (RFC 3501 5.2, 7.3.1): when the claim would wait for
		// the writer (held by another session's APPEND for its fsync),
		// they are told at a later command, at the latest
		// freshDeferBound after they were first held back, rather than
		// this command's answer waiting for that write.
		// fresh is ascending (changes: Delta's rows and Snapshot's UIDs
		// are in UID order), as the claim needs: its last is the highest
		// UID claimed. Reversed, the claim took the lowest for the highest
		// and left the others unclaimed (recent to no session) or marked
		// without a claim (recent to two: TestReview4RecentExactlyOne).
		// Those this session's APPEND claimed (ownClaim) need no claim.
		own, rest := v.takeOwnClaims(fresh)
		wait := allowExpunge || (!v.freshHeld.IsZero() && time.Since(v.freshHeld) >= freshDeferBound)
		_, done, err := v.claimRecentMaybe(rest, wait)
		if err != nil {
			v.s.srv.log.Warn("imapfront: claim recent", "account", v.s.address(), "mailbox", v.mb.Name, "err", err)
		}
		if done {
			v.freshHeld = time.Time{}
			v.markOwnClaims(own, fresh[len(fresh)-1])
		} else {
			if v.freshHeld.IsZero() {
				v.freshHeld = time.Now()
			}
			fresh = nil
			held = true
		}
	}
	if len(fresh) > 0 {
		v.uids = append(v.uids, fresh...) // ascending, above maxUID
		if held {
			// The next sync starts from the same MODSEQ again: the client
			// must not get these new messages' flags as changes then.
			for _, c := range ch.changed {
				if imap.UID(c.UID) > maxUID {
					v.reported[imap.UID(c.UID)] = c.ModSeq
				}
			}
		}
		if err := w.WriteNumMessages(uint32(len(v.uids))); err != nil {
			return err
		}
		if err := w.WriteNumRecent(v.numRecent()); err != nil {
			return err
		}
	}
	for _, c := range ch.changed {
		uid := imap.UID(c.UID)
		if uid > maxUID {
			continue // new to the client: it fetches the flags itself
		}
		if r, ok := v.reported[uid]; ok && r >= c.ModSeq {
			continue
		}
		seq := v.seqOf(uid)
		if seq == 0 {
			continue
		}
		write := w.WriteMessageFlags
		if v.s.condStore() {
			// RFC 7162 3.1: MODSEQ in every unsolicited FETCH.
			write = func(seq uint32, uid imap.UID, flags []imap.Flag) error {
				return w.WriteMessageFlagsModSeq(seq, uid, flags, c.ModSeq)
			}
		}
		if err := write(seq, uid, v.flags(uid, c.Flags)); err != nil {
			return err
		}
		v.reported[uid] = c.ModSeq
	}
	if len(v.updates) > 0 {
		// Searches kept up to date match the changed messages again
		// (context.go); those held back are not in the view yet.
		changed := make([]imap.UID, 0, len(ch.changed))
		for _, c := range ch.changed {
			if m, ok := v.matched[imap.UID(c.UID)]; !ok || m < c.ModSeq {
				changed = append(changed, imap.UID(c.UID))
			}
		}
		if err := v.updatesChanged(changed); err != nil {
			return err
		}
	}
	if held {
		v.dirty = true
	} else {
		v.modseq = ch.highest
		clear(v.reported)
		clear(v.matched)
		v.dirty = false
	}
	return nil
}

// ownStore takes this session's STORE (its result res, whose messages
// the session has just answered for or marked reported) as a change the
// view has read: when the view knew every change up to the mailbox's
// HIGHESTMODSEQ before it (res.Since) and holds nothing back, it knows
// every change up to res.ModSeq now, so the poll after the command need
// not read the mailbox for the session's own change (a Delta, a read
// transaction that re-reads the pages the STORE's commit made every
// reader drop: about a fifth of a lone STORE's CPU). The poll still reads
// when anything else came: a change by another session or process before
// the STORE makes res.Since differ from the view's, one after it is told
// to the watcher above res.ModSeq (store.Watcher.Changed), one to the
// account's mailboxes makes the watcher's answer true. What the client
// gets is what that Delta gave: the STORE's messages were reported
// (v.reported) and sync would have sent nothing for them.
func (v *view) ownStore(res *store.StoreResult) {
	if res.ModSeq == 0 || v.dirty || res.Since != v.modseq {
		return
	}
	v.modseq = res.ModSeq
	clear(v.reported)
	clear(v.matched)
}

// target is a message a command names.
type target struct {
	seq uint32
	uid imap.UID
}

// resolve returns the messages of the view a number set names, in sequence
// order. Numbers beyond the view are ignored (RFC 2180 4.1; FETCH, STORE,
// COPY and MOVE answer such sequence numbers BAD first, checkSeqSet); "*" is the last
// message (or highest UID) and "$" the saved search result (RFC 5182).
func (v *view) resolve(numSet imap.NumSet) []target {
	n := len(v.uids)
	if n == 0 {
		return nil
	}
	if imap.IsSearchRes(numSet) {
		numSet = v.searchRes
	}
	mark := make([]bool, n)
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, uint32(n))
			if start == 0 {
				start = 1
			}
			for s := start; s <= stop && s <= uint32(n); s++ {
				mark[s-1] = true
			}
		}
	case imap.UIDSet:
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), uint32(v.uids[n-1]))
			i := sort.Search(n, func(i int) bool { return v.uids[i] >= imap.UID(start) })
			for ; i < n && v.uids[i] <= imap.UID(stop); i++ {
				mark[i] = true
			}
		}
	}
	var out []target
	for i, m := range mark {
		if m {
			out = append(out, target{seq: uint32(i + 1), uid: v.uids[i]})
		}
	}
	return out
}

// staticRange replaces "*" (0) with max and orders the range.
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// staticUIDSet makes a UID set with "*" into a static one for this view.
func (v *view) staticUIDSet(set imap.UIDSet) imap.UIDSet {
	var max uint32
	if len(v.uids) > 0 {
		max = uint32(v.uids[len(v.uids)-1])
	}
	out := make(imap.UIDSet, 0, len(set))
	for _, r := range set {
		a, b := staticRange(uint32(r.Start), uint32(r.Stop), max)
		out = append(out, imap.UIDRange{Start: imap.UID(a), Stop: imap.UID(b)})
	}
	return out
}

func uidsOf(ts []target) []uint32 {
	out := make([]uint32, len(ts))
	for i, t := range ts {
		out[i] = uint32(t.uid)
	}
	return out
}

// chunks splits targets into runs that are read with one store query: at
// most 256 messages, and no wide gaps of unwanted messages.
func (v *view) chunks(ts []target) [][]target {
	var out [][]target
	start := 0
	for i := 1; i <= len(ts); i++ {
		if i == len(ts) || i-start >= 256 || ts[i].seq-ts[i-1].seq > 32 {
			out = append(out, ts[start:i])
			start = i
		}
	}
	return out
}

// messages reads the store's messages for a run of targets; the result is
// in target order, with nil where a message is gone. With located, each
// message's bytes can then be read without another query
// (store.MessageBytes).
func (v *view) messages(run []target, cache, located bool) ([]*store.Message, error) {
	out := make([]*store.Message, len(run))
	k := 0
	each := v.s.srv.st.EachMessage
	if located {
		each = v.s.srv.st.EachMessageLocated
	}
	err := each(v.s.readCtx(), v.mb.ID, uint32(run[0].uid), uint32(run[len(run)-1].uid), cache, func(m *store.Message) error {
		for k < len(run) && run[k].uid < imap.UID(m.UID) {
			k++
		}
		if k < len(run) && run[k].uid == imap.UID(m.UID) {
			out[k] = m
		}
		return nil
	})
	return out, err
}

func (v *view) readOnlyErr() error {
	return imapErr(imap.ResponseCode("READ-ONLY"), "Mailbox is read-only")
}

// Expunge implements imapserver.Session (RFC 3501 EXPUNGE and CLOSE,
// RFC 4315 UID EXPUNGE). Only messages the client knows are expunged. In
// a read-only mailbox EXPUNGE fails and CLOSE removes nothing.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	v := s.sel
	if v.readOnly {
		if w == nil || *w == (imapserver.ExpungeWriter{}) {
			return nil // CLOSE of an EXAMINEd mailbox: nothing to remove
		}
		return v.readOnlyErr()
	}
	if len(v.uids) == 0 {
		return nil
	}
	if w == nil || *w == (imapserver.ExpungeWriter{}) {
		// CLOSE: it tells nothing of what it expunges (RFC 3501 6.4.2),
		// and the searches kept up to date end with it (context.go).
		v.updates = nil
	}
	var list []uint32
	if uids != nil {
		list = uidsOf(v.resolve(*uids))
		if len(list) == 0 {
			return nil
		}
	} else {
		list = make([]uint32, len(v.uids))
		for i, u := range v.uids {
			list[i] = uint32(u)
		}
	}
	gone, err := s.srv.st.Expunge(s.ctx(), v.mb.ID, list)
	if err != nil {
		return s.storeErr(err, "EXPUNGE")
	}
	return v.tellExpunged(gone, w.WriteExpunge, w.WriteVanished)
}

// removeUIDs drops UIDs from the view, telling the client with EXPUNGE
// responses from the highest sequence number down (so each stays valid).
// v.uids is ascending: each UID is found by binary search and the view is
// closed up in one pass from the lowest one dropped. It was a map of the
// UIDs and two passes over the whole view looking each message up in it,
// 2.8% of serve's CPU under BenchmarkLatencyMailferry, where every
// session's poll drops the other sessions' expunged messages from a
// 2,000-message view (BenchmarkRemoveUIDs, one UID: 62 -> 0.95 µs).
func (v *view) removeUIDs(uids []uint32, write func(uint32) error) error {
	if len(uids) == 0 {
		return nil
	}
	var small [8]int
	at := small[:0] // the indexes in v.uids of the UIDs to drop
	for _, u := range uids {
		if i, ok := slices.BinarySearch(v.uids, imap.UID(u)); ok {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil
	}
	slices.Sort(at)
	at = slices.Compact(at)
	for j := len(at) - 1; j >= 0; j-- {
		if err := write(uint32(at[j] + 1)); err != nil {
			return err
		}
		delete(v.recent, v.uids[at[j]])
	}
	w := at[0]
	for j, i := range at {
		end := len(v.uids)
		if j+1 < len(at) {
			end = at[j+1]
		}
		w += copy(v.uids[w:], v.uids[i+1:end])
	}
	v.uids = v.uids[:w]
	return nil
}

// Store implements imapserver.Session (RFC 3501 6.4.6, RFC 7162
// UNCHANGEDSINCE: see changeFlags).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	v := s.sel
	if v.readOnly {
		return v.readOnlyErr()
	}
	fl, err := storeFlags(flags.Flags)
	if err != nil {
		return err
	}
	if err := v.checkSeqSet(numSet); err != nil {
		return err
	}
	ts := v.resolve(numSet)
	if len(ts) == 0 {
		return nil
	}
	op := store.FlagsSet
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	return s.changeFlags(w, numSet, ts, op, fl, flags, options)
}
