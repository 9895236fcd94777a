package imapfront

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// checkSeqSet answers BAD a FETCH, STORE, COPY or MOVE by message sequence
// numbers that names a number the session does not know: any number above
// the messages it was told of (RFC 3501 9, seq-number: "a valid message
// sequence number"), and "*" or any number at all in an empty mailbox (RFC
// 3501 6.4.8, 9: "*" is the largest number in use; an empty mailbox has
// none). Dovecot 2.3 answers these `BAD Error in IMAP command FETCH:
// Invalid messageset`, where Mailferry answered OK and did nothing, so a
// client that lost count (or raced an EXPUNGE it was not yet told of, which
// cannot happen here: the view keeps every message until the session is
// told) learnt nothing. UID commands, whose numbers need not name messages
// (RFC 3501 6.4.8), and "$" (RFC 5182: the saved result may hold numbers of
// messages since expunged) are not checked; SEARCH takes a set as a search
// key, which matches nothing beyond the mailbox, as in Dovecot.
func (v *view) checkSeqSet(numSet imap.NumSet) error {
	set, ok := numSet.(imap.SeqSet)
	if !ok || imap.IsSearchRes(numSet) {
		return nil
	}
	n := uint32(len(v.uids))
	for _, r := range set {
		for _, x := range [2]uint32{r.Start, r.Stop} {
			switch {
			case n == 0:
				return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
					Text: "Invalid message sequence set: the mailbox is empty"}
			case x > n: // 0 is "*", the last message
				return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
					Text: fmt.Sprintf("Invalid message sequence set: message %d is beyond the %d of the mailbox", x, n)}
			}
		}
	}
	return nil
}
