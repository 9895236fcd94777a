package imapfront_test

import (
	"strings"
	"testing"
)

// TestLineAroundLimit: lines of the limit's length, give or take a few
// bytes, are answered once each and the command behind them answered.
func TestLineAroundLimit(t *testing.T) {
	const maxCommandSize = 50 * 1024
	e := newEnv(t, nil)
	c := e.login()
	c.ok("SELECT INBOX")
	for _, head := range []string{"x1 XUNKNOWN ", "x1 SEARCH TEXT ", "x1 SEARCH TEXT \"", "x1 FETCH 1 BODY[HEADER.FIELDS (", "x1 ID (\"a\" \""} {
		for l := maxCommandSize - 4; l <= maxCommandSize+6; l++ {
			tailq := ""
			if strings.HasSuffix(head, "\"") {
				tailq = "\""
			}
			if strings.HasSuffix(head, "(") {
				tailq = ")]"
			}
			if strings.HasPrefix(head, "x1 ID") {
				tailq = "\")"
			}
			pad := l - len(head) - len(tailq) - 2
			line := head + strings.Repeat("a", pad) + tailq + "\r\n"
			done := c.sendAll(line + "x2 NOOP\r\n")
			got := c.readUntilTagOrClosed("x2 ")
			<-done
			if strings.Count(got, "x1 ") != 1 || !strings.Contains(got, "x2 OK") {
				t.Errorf("%q line of %d bytes: %.200q", head, len(line), got)
				return
			}
			t.Logf("%q %d: %.80q", head, len(line), got)
		}
	}
}
