package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTooLongLiteralAnnouncementStraddlesLimit: an over-long line whose
// last token is a non-synchronizing literal's announcement ("{n+}") is
// ended with BYE only when toolong.go sees the whole "{n+}" in the bytes
// it drops; when the 50 KiB bound falls inside the announcement, the
// decoder has already read its first bytes, the rest ("+}\r\n", "}\r\n",
// "\r\n") did not match toolong.go's pattern (fork change 51; one test with
// the decoder's since change 60), the line was answered BAD and the
// literal's bytes, which follow at once, are read as commands.
func TestTooLongLiteralAnnouncementStraddlesLimit(t *testing.T) {
	const maxCommandSize = 50 * 1024
	e := newEnv(t, nil)
	lit := "x\r\nZ DELETE Trash\r\n"
	ann := fmt.Sprintf("{%d+}", len(lit))
	for _, search := range []bool{false, true} {
		for cut := -2; cut <= len(ann); cut++ {
			// The decoder reads maxCommandSize+1 bytes of the line, then
			// stops: the first cut bytes of the announcement among them.
			head := "x1 XUNKNOWN "
			pad := maxCommandSize + 1 - cut - len(head)
			line := head + strings.Repeat("a", pad) + ann + "\r\n"
			if search {
				// The same in a SEARCH, the announcement parsed as a
				// literal's, after a first literal near the limit (its bytes
				// count once).
				const n = maxCommandSize - 100
				h1 := fmt.Sprintf("x1 SEARCH TEXT {%d+}\r\n", n) + strings.Repeat("a", n) + " OR TEXT "
				k := maxCommandSize + 1 - cut - len(h1) - len(" TEXT ")
				line = h1 + strings.Repeat("c", k) + " TEXT " + ann + "\r\n"
			}
			if got, deleted := trashDeletedBy(e, line+lit); deleted {
				t.Errorf("search %v, announcement cut after %d bytes: Trash deleted by the literal's line; server said %.300q", search, cut, got)
			}
		}
	}
}

func (c *conn) readUntilTagOrClosed(tag string) string {
	var sb strings.Builder
	c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		l, err := c.r.ReadString('\n')
		sb.WriteString(l)
		if err != nil || strings.HasPrefix(l, tag) {
			return sb.String()
		}
	}
}
