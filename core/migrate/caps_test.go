package migrate_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailferry/core/migrate"
	"mailferry/core/store"
)

// An old server with nothing but IMAP4rev1 (no NAMESPACE, LIST-STATUS,
// SPECIAL-USE, UIDPLUS, LITERAL+ or ENABLE) is copied completely, nested
// folders included.
func TestBareIMAP4rev1Server(t *testing.T) {
	u := imapmemserver.NewUser("gus@mem.test", "GusSecret1")
	raws := map[string][]byte{}
	for _, mb := range []string{"INBOX", "Archive", "Archive/2019"} {
		if err := u.Create(mb, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			raw := rawMessage(mb+" "+string(rune('a'+i)), 300+i)
			raws[sum(raw)] = raw
			if _, err := u.Append(mb, literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &brokenSession{user: u}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	st, _ := setup(t, ln.Addr().String())
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, st, "mem.test", settingsFor(t, ln.Addr().String()), true); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, nil)
	acct, err := e.FirstLogin(ctx, "gus@mem.test", "GusSecret1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, "gus@mem.test"); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Account(ctx, "gus@mem.test"); a.Migration != store.MigDone {
		t.Fatalf("account %q (%s)", a.Migration, a.MigrationError)
	}
	mbs, _ := st.Mailboxes(ctx, acct.ID)
	n := 0
	for _, m := range mbs {
		msgs, _ := st.Messages(ctx, m.ID)
		for _, msg := range msgs {
			if raws[msg.BlobKey] == nil {
				t.Errorf("%s UID %d: bytes not from the old server", m.Name, msg.UID)
			}
			n++
		}
	}
	if n != 9 {
		t.Errorf("%d messages copied, want 9", n)
	}
}
