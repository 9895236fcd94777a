package imapfront_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
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
		start := time.Now()
		got, deleted := trashDeletedBy(e, c.line+"\r\n"+lit)
		t.Logf("%s: %v, %.200q", c.what, time.Since(start), got[max(0, len(got)-200):])
		if deleted {
			t.Errorf("%s: Trash deleted by the literal's line; server said %.300q", c.what, got[max(0, len(got)-300):])
		}
	}
}

// trashDeletedBy sends, in a new session with INBOX selected and a Trash
// mailbox, what (whose literal holds a line Z DELETE Trash), an empty line
// (the end of the command, when the literal was read as one: the line
// after a literal is the command's) then x2 NOOP, and reports what the
// server answered up to x2's answer (or the connection's end) and whether
// Trash was deleted.
func trashDeletedBy(e *env, what string) (got string, deleted bool) {
	if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
		e.login().ok("CREATE Trash")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	done := c.sendAll(what + "\r\nx2 NOOP\r\n")
	got = c.readUntilTagOrClosed("x2 ")
	<-done
	_, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash")
	return got, err != nil
}

// TestLiteralSizeNearInt64: a literal announced of 2^63-1 bytes (or near)
// is past the command's bound, not taken: the bound's test added the size
// to the bytes read and overflowed, so LOGIN {9223372036854775807+}, before
// any login, had the server read and keep whatever followed, as much as
// was sent, in memory; and a refused command's such literal was read and
// dropped for ever (change 60's size past int64 is 2^63-1). Now * BYE
// [TOOBIG] at once, as for any literal past the bound.
func TestLiteralSizeNearInt64(t *testing.T) {
	e := newEnv(t, nil)
	for _, cmd := range []string{
		"a LOGIN {9223372036854775807+}\r\n",
		"a LOGIN {9223372036854775000+}\r\n",
		"a SEARCH CHARSET X-NONE TEXT {99999999999999999999+}\r\n",
	} {
		c := e.dial()
		if strings.Contains(cmd, "SEARCH") {
			c = e.login()
			c.ok("SELECT INBOX")
		}
		done := c.sendAll(cmd + strings.Repeat("x", 1<<20))
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := c.r.ReadString('\n')
		if !strings.HasPrefix(l, "* BYE [TOOBIG]") {
			t.Errorf("%q and 1 MiB: %q (%v), want * BYE [TOOBIG] at once", strings.TrimSpace(cmd), l, err)
		}
		c.c.Close()
		<-done
	}
}
