package imapfront

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// \Recent (RFC 3501 2.3.2, 6.3.1, 7.3.2): a message is recent to the first
// session that selects its mailbox read-write after it arrived, and to no
// other. The store hands out each message once (store.ClaimRecent); a
// session keeps the UIDs recent to it in view.recent. EXAMINE claims
// nothing (RFC 3501 6.3.2: it must not make messages lose \Recent) but
// shows the unclaimed messages as recent.

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
