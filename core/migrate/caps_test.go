package migrate_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailferry/core/store"
)

// An old server with nothing but IMAP4rev1 (no NAMESPACE, LIST-STATUS,
// SPECIAL-USE, UIDPLUS, LITERAL+ or ENABLE) is copied completely, nested
// folders included.
func TestBareIMAP4rev1Server(t *testing.T) {
	u := imapmemserver.NewUser("gus@mem.test", "GusSecret1")
	var raws [][]byte
	for _, mb := range []string{"INBOX", "Archive", "Archive/2019"} {
		if err := u.Create(mb, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			raw := rawMessage(mb+" "+string(rune('a'+i)), 300+i)
			raws = append(raws, raw)
			if _, err := u.Append(mb, literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, _, acct := copyFromMem(t, imap.CapSet{imap.CapIMAP4rev1: {}}, func() imapserver.Session { return &brokenSession{user: u} }, "gus@mem.test", "GusSecret1")
	byKey := map[string][]byte{}
	for _, raw := range raws {
		byKey[st.BlobKey(raw)] = raw
	}
	ctx := context.Background()
	if a, _ := st.Account(ctx, "gus@mem.test"); a.Migration != store.MigDone {
		t.Fatalf("account %q (%s)", a.Migration, a.MigrationError)
	}
	mbs, _ := st.Mailboxes(ctx, acct.ID)
	n := 0
	for _, m := range mbs {
		msgs, _ := st.Messages(ctx, m.ID)
		for _, msg := range msgs {
			if byKey[msg.BlobKey] == nil {
				t.Errorf("%s UID %d: bytes not from the old server", m.Name, msg.UID)
			}
			n++
		}
	}
	if n != 9 {
		t.Errorf("%d messages copied, want 9", n)
	}
}
