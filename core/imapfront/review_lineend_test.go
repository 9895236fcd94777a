package imapfront_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestLiteralAtLineEndOneTest: the over-long line's reader (toolong.go)
// and the decoder's DiscardCommand ask one test whether a line ends
// announcing a non-synchronizing literal, the one LiteralReader's grammar
// gives (FORK.md change 60). Before, each had its own over the last 32
// bytes: a line the decoder would read as announcing a literal ("{20+} "
// with the SP its CRLF takes; "{" and 40 zeros before "20+}") was, past
// the 50 KiB bound or refused before its literal, answered and its
// literal's bytes read as commands (Trash deleted); and "{999...9+}",
// past int64, did so in a refused command while toolong.go ended the
// connection.
func TestLiteralAtLineEndOneTest(t *testing.T) {
	const maxCommandSize = 50 * 1024
	e := newEnv(t, nil)
	lit := "x\r\nZ DELETE Trash\r\n"
	n := len(lit)
	zeros := strings.Repeat("0", 40)
	over := func(ann string) string { // a line over the bound ending with ann
		head := "x1 XUNKNOWN "
		return head + strings.Repeat("a", maxCommandSize+100-len(head)) + ann
	}
	for _, c := range []struct{ what, line string }{
		{"over-long, {n+} SP", over(fmt.Sprintf("{%d+} ", n))},
		{"over-long, {0...0n+}", over("{" + zeros + fmt.Sprintf("%d+}", n))},
		{"over-long, '{' and zeros before the bound", func() string {
			// The decoder reads maxCommandSize+1 bytes: the "{" and 30 of
			// the zeros among them, more than its old 32-byte tail held.
			head := "x1 XUNKNOWN "
			ann := "{" + zeros + fmt.Sprintf("%d+}", n)
			return head + strings.Repeat("a", maxCommandSize+1-31-len(head)) + ann
		}()},
		{"refused, {n+} SP", fmt.Sprintf("x1 SEARCH CHARSET X-NONE TEXT {%d+} ", n)},
		{"refused, {0...0n+}", "x1 SEARCH CHARSET X-NONE TEXT {" + zeros + fmt.Sprintf("%d+}", n)},
		{"refused, {99999999999999999999+}", "x1 SEARCH CHARSET X-NONE TEXT {99999999999999999999+}"},
	} {
		if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
			e.login().ok("CREATE Trash")
		}
		cl := e.login()
		cl.ok("SELECT INBOX")
		done := cl.sendAll(c.line + "\r\n" + lit + "x2 NOOP\r\n")
		got := cl.readUntilTagOrClosed("x2 ")
		<-done
		if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
			t.Errorf("%s: Trash deleted by the literal's line (%v); server said %.300q", c.what, err, got[max(0, len(got)-300):])
		}
	}
}
