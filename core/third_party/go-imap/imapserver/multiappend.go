package imapserver

import (
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionMultiAppend is an IMAP session which supports MULTIAPPEND (RFC
// 3502): one APPEND command carries several messages, appended all or none.
// The server advertises MULTIAPPEND when its capabilities include
// imap.CapMultiAppend, and then handles every APPEND through it.
type SessionMultiAppend interface {
	Session

	// MultiAppend starts an APPEND to mailbox. It is called before the
	// first message is read, so that a missing mailbox is refused (with
	// TRYCREATE) before the client sends any message.
	MultiAppend(mailbox string) (AppendBatch, error)
}

// AppendBatch is the messages of one APPEND command.
type AppendBatch interface {
	// Add reads one message; it must read r to its end or fail.
	Add(r imap.LiteralReader, options *imap.AppendOptions) error
	// Commit appends every message added, all or none, and returns their
	// UIDs in order.
	Commit() (uidValidity uint32, uids imap.UIDSet, err error)
	// Abort abandons the batch; it is called after a failure, and is
	// harmless after Commit.
	Abort()
}

func (c *Conn) handleMultiAppend(tag string, dec *imapwire.Decoder, sess SessionMultiAppend) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}

	appendLimit := int64(defaultAppendLimit)
	if appendLimitSession, ok := c.session.(SessionAppendLimit); ok {
		appendLimit = int64(appendLimitSession.AppendLimit())
	}

	var batch AppendBatch
	// failed is the first error; the rest of the command is read all the
	// same (its literals may be non-synchronizing) and then answered.
	var failed error
	defer func() {
		if batch != nil {
			batch.Abort()
		}
	}()
	for n := 0; ; n++ {
		if n > 0 && !dec.SP() {
			break // end of the command: CRLF is expected below
		}
		if n == 0 && !dec.ExpectSP() {
			return dec.Err()
		}
		var options imap.AppendOptions
		hasFlagList, err := dec.List(func() error {
			flag, err := internal.ExpectFlag(dec)
			if err != nil {
				return err
			}
			options.Flags = append(options.Flags, flag)
			return nil
		})
		if err != nil {
			return err
		}
		if hasFlagList && !dec.ExpectSP() {
			return dec.Err()
		}
		t, err := internal.DecodeDateTime(dec)
		if err != nil {
			return err
		}
		if !t.IsZero() && !dec.ExpectSP() {
			return dec.Err()
		}
		options.Time = t

		var dataExt string
		if !dec.Special('~') && dec.Atom(&dataExt) { // ignore literal8 prefix if any for BINARY
			switch strings.ToUpper(dataExt) {
			case "CATENATE":
				if !c.server.options.caps().Has(imap.CapCatenate) {
					return newClientBugError("Unknown APPEND data extension")
				}
				// fork (FORK.md change 53): RFC 4469, catenate.go.
				if err := c.appendCatenate(dec, sess, mailbox, &batch, &failed, &options, appendLimit); err != nil {
					return err
				}
				continue
			case "UTF8":
				if !dec.ExpectSP() || !dec.ExpectSpecial('(') || !dec.ExpectSpecial('~') {
					return dec.Err()
				}
			default:
				return newClientBugError("Unknown APPEND data extension")
			}
		}

		lit, nonSync, err := dec.ExpectLiteralReader()
		if err != nil {
			return err
		}
		if failed == nil && lit.Size() > appendLimit {
			failed = &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodeTooBig,
				Text: fmt.Sprintf("Literals are limited to %v bytes for this command", appendLimit),
			}
		}
		if failed == nil && batch == nil {
			// Before the first literal is accepted: a missing mailbox is
			// refused before the client sends anything.
			if batch, err = sess.MultiAppend(mailbox); err != nil {
				failed = err
			}
		}
		if failed != nil {
			if !nonSync {
				// The client waits for a continuation: the answer stops it.
				dec.DiscardLine()
				return failed
			}
			// A non-synchronizing literal comes anyway: read the rest of
			// the command, to answer it once, after its end.
		} else if err := c.acceptLiteral(lit.Size(), nonSync); err != nil {
			return err
		}

		c.setReadTimeout(literalReadTimeout)
		var addErr error
		if failed == nil {
			addErr = batch.Add(lit, &options)
		}
		_, discardErr := io.Copy(io.Discard, lit)
		c.setReadTimeout(cmdReadTimeout)
		if discardErr != nil {
			return discardErr
		}
		if dataExt != "" && !dec.ExpectSpecial(')') {
			return dec.Err()
		}
		if failed == nil {
			failed = addErr
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if failed != nil {
		return failed
	}
	uidValidity, uids, err := batch.Commit()
	batch = nil
	if err != nil {
		return err
	}
	if err := c.poll("APPEND"); err != nil {
		return err
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom(tag).SP().Atom("OK").SP()
	if uidValidity != 0 && len(uids) > 0 {
		enc.Special('[')
		enc.Atom("APPENDUID").SP().Number(uidValidity).SP().NumSet(uids)
		enc.Special(']').SP()
	}
	enc.Text("APPEND completed")
	return enc.CRLF()
}
