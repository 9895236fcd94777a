package migrate

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Explain says the engine's own failures in words by their type, however
// wrapped, and leaves the old server's to oldserver.Explain.
func TestExplain(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind oldserver.ProblemKind
		says string
	}{
		{fmt.Errorf("migrate: copy: %w", ErrDiskFull), ProblemDiskFull, "disk is full"},
		{fmt.Errorf("store: write pack: %w", syscall.ENOSPC), ProblemDiskFull, "disk is full"},
		{fmt.Errorf("%w: alice@example.test", ErrNoCredentials), ProblemNoPassword, "no password"},
		{fmt.Errorf("migrate: alice@example.test: %w", store.ErrLeased), ProblemCopying, "Another Mailferry process"},
		{retryingError("INBOX", fmt.Errorf("fetch: %w", oldserver.ErrAuthFailed)), oldserver.ProblemPassword, "refused the user name or password"},
		{fmt.Errorf("fetch: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections"}), oldserver.ProblemBusy, "busy"},
	} {
		p := Explain(c.err)
		if p.Kind != c.kind || !strings.Contains(p.String(), c.says) || p.Detail != c.err.Error() {
			t.Errorf("Explain(%v) = %+v, want kind %s saying %q", c.err, p, c.kind, c.says)
		}
	}
	if p := Explain(nil); p.Kind != "" {
		t.Errorf("Explain(nil) = %+v", p)
	}
	w := refusalWords(&imap.Error{Type: imap.StatusResponseTypeNo, Code: "SERVERBUG", Text: "Message file is damaged"})
	if w != "the old server refused it: “Message file is damaged” (NO SERVERBUG)" {
		t.Errorf("refusalWords = %q", w)
	}
}
