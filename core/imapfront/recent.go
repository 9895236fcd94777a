package imapfront

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// \Recent (RFC 3501 2.3.2, 6.3.1, 7.3.2): a message is recent to the first
// session that selects its mailbox read-write after it arrived, and to no
// other. The store hands out each message once (store.ClaimRecent); a
// session keeps the UIDs recent to it in view.recent. EXAMINE claims
// nothing (RFC 3501 6.3.2: it must not make messages lose \Recent) but
// shows the unclaimed messages as recent. A session's APPEND into its
// mailbox selected read-write claims in the APPEND's own transaction
// (appendOne): the session is the first told of the message, and no claim
// write of its own waits for the writer after it.

// claimingView is the session's view when mb is its mailbox selected
// read-write, else nil: an APPEND into that mailbox claims its messages as
// recent to the session (appendOne).
func (s *session) claimingView(mb *store.Mailbox) *view {
	if v := s.sel; v != nil && !v.readOnly && v.mb.ID == mb.ID {
		return v
	}
	return nil
}

// appendOne appends one message to mb. Into the mailbox selected
// read-write, the new message (and any unclaimed one before it) is recent
// to this session, claimed in the APPEND's own transaction
// (store.AppendMessageRecent) instead of by a write of its own at the
// poll after it, which waited for its turn of the writer.
func (s *session) appendOne(mb *store.Mailbox, m *store.NewMessage) (*store.Message, error) {
	v := s.claimingView(mb)
	if v == nil {
		return s.srv.st.AppendMessage(s.ctx(), mb.ID, m)
	}
	out, last, err := s.srv.st.AppendMessageRecent(s.ctx(), mb.ID, m)
	if err != nil {
		return nil, err
	}
	v.ownClaim(last, out.UID)
	return out, nil
}

// uidRange is the UIDs above from and up to to.
type uidRange struct{ from, to uint32 }

// maxOwnClaims bounds view.claimed: past it the oldest range is dropped,
// its messages recent to no session (never to two).
const maxOwnClaims = 64

// ownClaim records that this session's APPEND claimed the messages above
// last and up to upTo as recent to it (store.AppendMessageRecent); they
// are marked recent as they come into the view (takeOwnClaims).
func (v *view) ownClaim(last, upTo uint32) {
	if upTo <= last {
		return
	}
	if len(v.claimed) == maxOwnClaims {
		v.claimed = append(v.claimed[:0], v.claimed[1:]...)
	}
	v.claimed = append(v.claimed, uidRange{last, upTo})
	v.dirty = true
}

// takeOwnClaims splits new messages' UIDs (ascending) into those this
// session claimed already (ownClaim) and the others, still to claim.
func (v *view) takeOwnClaims(uids []imap.UID) (own, rest []imap.UID) {
	if len(v.claimed) == 0 {
		return nil, uids
	}
	for _, u := range uids {
		mine := false
		for _, r := range v.claimed {
			if uint32(u) > r.from && uint32(u) <= r.to {
				mine = true
				break
			}
		}
		if mine {
			own = append(own, u)
		} else {
			rest = append(rest, u)
		}
	}
	return own, rest
}

// markOwnClaims marks own (from takeOwnClaims) recent, now that they are
// in the view, and forgets the claims the view has gone past: every UID
// of them at or below top, the highest UID in the view, came in or was
// expunged or hidden before (UIDs are given in order).
func (v *view) markOwnClaims(own []imap.UID, top imap.UID) {
	for _, u := range own {
		if v.recent == nil {
			v.recent = map[imap.UID]bool{}
		}
		v.recent[u] = true
	}
	kept := v.claimed[:0]
	for _, r := range v.claimed {
		if r.to > uint32(top) {
			kept = append(kept, r)
		}
	}
	v.claimed = kept
}

// claimRecent marks as recent to this view the messages with UIDs in uids
// (ascending) that nobody claimed yet, claiming them unless the view is
// read-only. It returns how many it marked.
func (v *view) claimRecent(uids []imap.UID) (int, error) {
	n, _, err := v.claimRecentMaybe(uids, true)
	return n, err
}

// claimRecentMaybe is claimRecent that, without wait, claims only if that
// needs no wait for the writer (store.TryClaimRecent); done false says it
// claimed and marked nothing.
func (v *view) claimRecentMaybe(uids []imap.UID, wait bool) (n int, done bool, err error) {
	if len(uids) == 0 {
		return 0, true, nil
	}
	top := uint32(uids[len(uids)-1])
	st, ctx := v.s.srv.st, v.s.ctx()
	last, err := st.RecentFrom(ctx, v.mb.ID)
	if err != nil {
		return 0, true, err
	}
	if last >= top {
		return 0, true, nil
	}
	if !v.readOnly {
		if wait {
			last, err = st.ClaimRecent(ctx, v.mb.ID, top)
		} else {
			var ok bool
			if last, ok, err = st.TryClaimRecent(ctx, v.mb.ID, top); err == nil && !ok {
				return 0, false, nil
			}
		}
		if err != nil {
			return 0, true, err
		}
	}
	n = 0
	for _, u := range uids {
		if uint32(u) > last {
			if v.recent == nil {
				v.recent = map[imap.UID]bool{}
			}
			v.recent[u] = true
			n++
		}
	}
	return n, true, nil
}

func (v *view) isRecent(uid imap.UID) bool { return v.recent[uid] }

// numRecent is the number of messages recent to this session (the RECENT
// response).
func (v *view) numRecent() uint32 { return uint32(len(v.recent)) }

// numRecentClaimed is the number of messages recent to this session that
// were claimed (by it, or after an EXAMINE showed them, by another): the
// unclaimed ones an EXAMINE shows as recent are in store.RecentCount
// already, and STATUS (RECENT) of the selected mailbox counts each
// message once.
func (v *view) numRecentClaimed() (uint32, error) {
	if !v.readOnly {
		return v.numRecent(), nil // all claimed by this session
	}
	last, err := v.s.srv.st.RecentFrom(v.s.ctx(), v.mb.ID)
	if err != nil {
		return 0, err
	}
	var n uint32
	for u := range v.recent {
		if uint32(u) <= last {
			n++
		}
	}
	return n, nil
}

// flags is a message's flags as this session sees them: the stored flags
// (see imapFlags) and \Recent when the message is recent to it.
func (v *view) flags(uid imap.UID, stored []string) []imap.Flag {
	out := imapFlags(stored)
	if v.recent[uid] {
		out = append(out, imap.Flag(`\Recent`))
	}
	return out
}

// isRecentFlag reports whether a search or store flag is \Recent.
func isRecentFlag(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) }
