package imapfront

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// A session whose selected mailbox is deleted (by another session, or by
// its own DELETE) ends with an untagged BYE, as Dovecot 2.3 ends it
// ("Selected mailbox was deleted, have to disconnect."): the client's
// numbering of the mailbox's messages has nothing left to stand for, and
// RFC 3501 gives no response that tells a client its selected mailbox is
// gone. The client logs in again and finds the mailbox missing, or
// another created since under the same name with a new UIDVALIDITY.
// Until the BYE, a command acts on the deleted mailbox's id, which the
// store never gives again, so never on a mailbox created since under
// the same name: FETCH finds nothing, STORE and EXPUNGE answer BYE.
//
// The BYE comes at the poll after the first command that learns of the
// deletion, instead of its tagged OK (the fork's conn.go, FORK.md
// change 32), at once in IDLE, or instead of a NO [NONEXISTENT] for the
// selected mailbox (storeErr). The session's own DELETE is answered OK;
// the BYE comes at its next command.
//
// A RENAME by another session is followed: the view keeps the mailbox's
// id, its messages and UIDVALIDITY stay, and the client learns the new
// name at its next LIST. (Dovecot on Maildir ends the session there too;
// following is what RFC 3501 6.3.5 lets a server do and loses the client
// nothing.)

// errSelectedDeleted is the BYE of a session whose selected mailbox was
// deleted.
var errSelectedDeleted = &imap.Error{
	Type: imap.StatusResponseTypeBye,
	Text: "Selected mailbox was deleted, have to disconnect.",
}

// deletedHere marks the view's mailbox deleted by the session's own
// DELETE: the poll after it answers OK, the next one BYE.
func (v *view) deletedHere() {
	v.ownDelete = true
	v.dirty = true
}

// deleted is view.sync's answer when the selected mailbox is not found.
func (v *view) deleted() error {
	if v.ownDelete {
		// The DELETE's own poll: its OK first.
		v.ownDelete = false
		v.dirty = true
		return nil
	}
	return errSelectedDeleted
}

// selectedGone reports whether the session's selected mailbox no longer
// exists, for a command that failed with store.ErrNotFound.
func (s *session) selectedGone() bool {
	if s.sel == nil {
		return false
	}
	_, err := s.srv.st.MailboxByID(s.ctx(), s.sel.mb.ID)
	return errors.Is(err, store.ErrNotFound)
}

// bye ends the connection with err's text when err is a BYE (Idle, whose
// answers the fork writes only after the client's DONE), and returns the
// other errors.
func (s *session) bye(err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBye && s.conn != nil {
		s.conn.Bye(ie.Text)
		return nil
	}
	return err
}
