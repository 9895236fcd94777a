package imapfront

// COPY and MOVE (RFC 3501 6.4.7, RFC 6851): the session's commands that
// put messages into another mailbox.

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// Copy implements imapserver.Session (RFC 3501 6.4.7, RFC 4315 COPYUID).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := s.sel
	if err := v.checkSeqSet(numSet); err != nil {
		return nil, err
	}
	dst, err := s.destination(dest)
	if err != nil {
		return nil, err
	}
	ts := v.resolve(numSet)
	if len(ts) == 0 {
		return nil, nil
	}
	pairs, err := s.srv.st.Copy(s.ctx(), v.mb.ID, uidsOf(ts), dst.ID)
	if err != nil {
		return nil, s.storeErr(err, "COPY")
	}
	return copyData(dst, pairs), nil
}

// destination looks up the mailbox an APPEND, COPY or MOVE writes to; a
// missing one is answered with TRYCREATE (RFC 3501 6.3.11, 6.4.7).
func (s *session) destination(name string) (*store.Mailbox, error) {
	dst, err := s.mailbox(name)
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
			return nil, imapErr(imap.ResponseCodeTryCreate, "No such mailbox")
		}
		return nil, err
	}
	return dst, nil
}

func copyData(dst *store.Mailbox, pairs []store.UIDPair) *imap.CopyData {
	if len(pairs) == 0 {
		return nil
	}
	var src, dstUIDs imap.UIDSet
	for _, p := range pairs {
		src.AddNum(imap.UID(p.Src))
		dstUIDs.AddNum(imap.UID(p.Dst))
	}
	return &imap.CopyData{UIDValidity: dst.UIDValidity, SourceUIDs: src, DestUIDs: dstUIDs}
}

// Move implements imapserver.SessionMove (RFC 6851).
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := s.sel
	if v.readOnly {
		return v.readOnlyErr()
	}
	if err := v.checkSeqSet(numSet); err != nil {
		return err
	}
	dst, err := s.destination(dest)
	if err != nil {
		return err
	}
	ts := v.resolve(numSet)
	if len(ts) == 0 {
		return nil
	}
	pairs, err := s.srv.st.Move(s.ctx(), v.mb.ID, uidsOf(ts), dst.ID)
	if err != nil {
		return s.storeErr(err, "MOVE")
	}
	if data := copyData(dst, pairs); data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	moved := make([]uint32, len(pairs))
	for i, p := range pairs {
		moved[i] = p.Src
	}
	return v.tellExpunged(moved, w.WriteExpunge, w.WriteVanished)
}
