package imapserver

import (
	"bufio"
	"regexp"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// fork (FORK.md change 44): a command line longer than maxCommandSize is
// answered BAD and the rest of its line dropped, as Dovecot 2.3 answers
// one longer than its 64 KiB ("Too long argument"). Before, it was
// answered NO [SERVERBUG] and the rest of the line was read as the next
// command. A line that ends announcing a non-synchronizing literal
// ("{n+}") ends the session with BYE instead: its literal follows at once
// and could not be told from commands.

// nonSyncAtEnd matches a non-synchronizing literal's announcement at a
// line's end (RFC 7888).
var nonSyncAtEnd = regexp.MustCompile(`~?\{[0-9]+\+\}\r?\n$`)

// tooLong answers a command whose line was longer than maxCommandSize.
func (c *Conn) tooLong(tag string, dec *imapwire.Decoder) error {
	nonSync, err := discardLine(c.br, dec.Tail())
	if err != nil {
		return err
	}
	if nonSync {
		c.state = imap.ConnStateLogout
		return c.writeStatusResp("", &imap.StatusResponse{
			Type: imap.StatusResponseTypeBye,
			Text: "Command line too long",
		})
	}
	return c.writeStatusResp(tag, &imap.StatusResponse{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "Command line too long",
	})
}

// discardLine reads and drops the rest of a line (bounded in time by the
// connection's read deadline, in memory by br's buffer), and reports
// whether it ended announcing a non-synchronizing literal. read is the
// end of what the decoder read of the line: it may have read the start of
// the announcement, even all of it (Mailferry review).
func discardLine(br *bufio.Reader, read []byte) (nonSync bool, err error) {
	tail := append([]byte(nil), read...) // the line's last bytes
	for {
		b, err := br.ReadSlice('\n')
		tail = append(tail, b...)
		if len(tail) > 32 {
			tail = append(tail[:0], tail[len(tail)-32:]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return false, err
		}
		return nonSyncAtEnd.Match(tail), nil
	}
}
