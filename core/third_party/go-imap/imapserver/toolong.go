package imapserver

import (
	"bufio"

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

// tooLong answers a command whose line was longer than maxCommandSize.
func (c *Conn) tooLong(tag string, dec *imapwire.Decoder) error {
	nonSync, err := discardLine(c.br, dec.LineEnd())
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
// line the decoder read: it may have read the start of the announcement,
// even all of it (Mailferry review); imapwire.LineEnd goes on from there,
// the one test of a literal at a line's end the decoder uses too (FORK.md
// change 60: a regular expression here over the last 32 bytes missed a
// "{" further back, a SP before the CRLF, and took "{99999999999999999999+}"
// where the decoder's test did not).
func discardLine(br *bufio.Reader, read imapwire.LineEnd) (nonSync bool, err error) {
	end := read
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			end.Write(b)
			continue
		}
		if err != nil {
			return false, err
		}
		end.Write(b[:len(b)-1])
		_, nonSync, ok := end.Literal()
		return ok && nonSync, nil
	}
}
