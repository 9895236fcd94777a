package imapserver

import (
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// fork (FORK.md change 53): CATENATE (RFC 4469).

// AppendBatchCatenate is an AppendBatch that also builds messages from
// parts, APPEND's CATENATE (RFC 4469), also within MULTIAPPEND. The server
// advertises CATENATE when its capabilities include imap.CapCatenate; the
// batches its SessionMultiAppend returns must then implement it.
type AppendBatchCatenate interface {
	AppendBatch
	// Catenate starts a message made of parts, in the order they come.
	Catenate(options *imap.AppendOptions) (CatenateMessage, error)
}

// CatenateMessage is one message of CATENATE being assembled. After any of
// its methods failed, none is called again.
type CatenateMessage interface {
	// Text adds a TEXT part; it must read r to its end or fail.
	Text(r imap.LiteralReader) error
	// URL adds the bytes an IMAP URL (RFC 5092) names; one that cannot be
	// resolved fails with NO [BADURL url].
	URL(url string) error
	// End adds the message to the batch.
	End() error
}

// appendCatenate reads `"(" cat-part *(SP cat-part) ")"` after CATENATE
// SP: each part is given to a CatenateMessage as it comes. *failed is the
// command's first failure: the parts after it are read and dropped (non-
// synchronizing literals come all the same) and the command answered once,
// at its end; before a synchronizing literal the failure is the answer
// (returned, the line dropped), as for a plain APPEND.
func (c *Conn) appendCatenate(dec *imapwire.Decoder, sess SessionMultiAppend, mailbox string, batch *AppendBatch, failed *error, options *imap.AppendOptions, appendLimit int64) error {
	if !dec.ExpectSP() || !dec.ExpectSpecial('(') {
		return dec.Err()
	}
	var msg CatenateMessage
	start := func() {
		if *failed == nil && *batch == nil {
			// Before the first part is used: a missing mailbox is refused
			// before the client sends anything.
			b, err := sess.MultiAppend(mailbox)
			if err != nil {
				*failed = err
				return
			}
			*batch = b
		}
		if *failed == nil && msg == nil {
			cat, ok := (*batch).(AppendBatchCatenate)
			if !ok {
				*failed = fmt.Errorf("imapserver: CATENATE advertised, but the session's AppendBatch is no AppendBatchCatenate")
				return
			}
			m, err := cat.Catenate(options)
			if err != nil {
				*failed = err
				return
			}
			msg = m
		}
	}
	for n := 0; ; n++ {
		if n > 0 {
			if dec.Special(')') {
				break
			}
			if !dec.ExpectSP() {
				return dec.Err()
			}
		}
		var kind string
		if !dec.ExpectAtom(&kind) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch strings.ToUpper(kind) {
		case "URL":
			var url string
			if !dec.ExpectAString(&url) {
				return dec.Err()
			}
			start()
			if *failed == nil {
				*failed = msg.URL(url)
			}
		case "TEXT":
			dec.Special('~') // literal8 (RFC 3516's BINARY): the same bytes
			lit, nonSync, err := dec.ExpectLiteralReader()
			if err != nil {
				return err
			}
			if *failed == nil && lit.Size() > appendLimit {
				*failed = &imap.Error{
					Type: imap.StatusResponseTypeNo,
					Code: imap.ResponseCodeTooBig,
					Text: fmt.Sprintf("Literals are limited to %v bytes for this command", appendLimit),
				}
			}
			start()
			if *failed != nil {
				if !nonSync {
					// The client waits for a continuation: the answer
					// stops it.
					dec.DiscardLine()
					return *failed
				}
			} else if err := c.acceptLiteral(lit.Size(), nonSync); err != nil {
				return err
			}
			c.setReadTimeout(literalReadTimeout)
			var textErr error
			if *failed == nil {
				textErr = msg.Text(lit)
			}
			_, discardErr := io.Copy(io.Discard, lit)
			c.setReadTimeout(cmdReadTimeout)
			if discardErr != nil {
				return discardErr
			}
			if *failed == nil {
				*failed = textErr
			}
		default:
			return newClientBugError("Unknown CATENATE part: TEXT or URL expected")
		}
	}
	if *failed == nil && msg != nil {
		*failed = msg.End()
	}
	return nil
}
