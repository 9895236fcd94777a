package migrate_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// hostileText reports what in s a terminal or a window would not show as
// it is: control characters (C0, DEL, C1: escape sequences) and the
// bidirectional overrides.
func hostileText(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || 0x7f <= r && r <= 0x9f || r == '\u202e' || r == '\u2066'
	})
}

// TestHostileServerWords: an old server's words (a NO's text) and a folder
// name a user chose there reach the admin (progress errors, copy problems,
// `mailferry status`) without terminal escape sequences or bidi overrides.
func TestHostileServerWords(t *testing.T) {
	const folder = "Bills\x1b]0;owned\x07\u202eftp.exe"
	u := imapmemserver.NewUser("gail@mem.test", "GailSecret1")
	for _, name := range []string{"INBOX", folder} {
		if err := u.Create(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		raw := rawMessage("hostile "+string(rune('a'+i)), 300)
		if _, err := u.Append(folder, literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	st, e, acct := copyFromMem(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}}, func() imapserver.Session {
		return &brokenSession{user: u, bad: 2, text: "damaged \x1b[2J\x1b[31mALL MAIL LOST\u009b0m \u202eevil"}
	}, "gail@mem.test", "GailSecret1")
	ctx := context.Background()
	probs, err := st.CopyProblems(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].OldUID != 2 || !strings.Contains(probs[0].Words, "ALL MAIL LOST") {
		t.Fatalf("problems %+v", probs)
	}
	if p := probs[0]; hostileText(p.Mailbox) || hostileText(p.Words) || !strings.HasPrefix(p.Mailbox, "Bills") {
		t.Errorf("copy problem kept as mailbox %q, words %q", p.Mailbox, p.Words)
	}
	p := e.Progress()
	if len(p) != 1 || len(p[0].Errors) == 0 {
		t.Fatalf("progress %+v", p)
	}
	for _, msg := range p[0].Errors {
		if hostileText(msg) {
			t.Errorf("progress error %q", msg)
		}
	}
}
