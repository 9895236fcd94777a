package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailferry/core/migrate"
	"mailferry/core/store"
)

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// brokenSession is an in-memory IMAP session whose server answers NO to
// any FETCH of the body of one message (as a server with a damaged message
// file does), after sending the others.
type brokenSession struct {
	*imapmemserver.UserSession
	user *imapmemserver.User
	bad  imap.UID
	text string // the NO's text; "" means "Message file is damaged"
}

func (s *brokenSession) Login(username, password string) error {
	if err := s.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.user)
	return nil
}

func (s *brokenSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	set, ok := numSet.(imap.UIDSet)
	if !ok || len(options.BodySection) == 0 || !set.Contains(s.bad) {
		return s.UserSession.Fetch(w, numSet, options)
	}
	var rest imap.UIDSet
	for _, r := range set {
		for u := r.Start; u <= r.Stop && r.Stop != 0; u++ {
			if u != s.bad {
				rest.AddNum(u)
			}
		}
	}
	if len(rest) > 0 {
		if err := s.UserSession.Fetch(w, rest, options); err != nil {
			return err
		}
	}
	text := s.text
	if text == "" {
		text = "Message file is damaged"
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: text}
}

// copyFromMem serves an in-memory old server (mem.test) announcing caps,
// each connection's session made by newSession, then makes the first
// login of address with password and waits for its copy to end.
func copyFromMem(t *testing.T, caps imap.CapSet, newSession func() imapserver.Session, address, password string) (*store.Store, *migrate.Engine, *store.Account) {
	t.Helper()
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return newSession(), nil, nil
		},
		Caps:         caps,
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
	acct, err := e.FirstLogin(ctx, address, password)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, address); err != nil {
		t.Fatal(err)
	}
	return st, e, acct
}

// TestRefusedMessage: a message the old server refuses to serve is
// reported and skipped; the others are copied.
func TestRefusedMessage(t *testing.T) {
	u := imapmemserver.NewUser("dave@mem.test", "DaveSecret1")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	for i := 0; i < 5; i++ {
		raw := rawMessage("mem "+string(rune('a'+i)), 400)
		raws = append(raws, raw)
		if _, err := u.Append("INBOX", literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	st, e, acct := copyFromMem(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}}, func() imapserver.Session { return &brokenSession{user: u, bad: 3} }, "dave@mem.test", "DaveSecret1")
	ctx := context.Background()
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	msgs, _ := st.Messages(ctx, inbox.ID)
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, m.UID)
		if m.BlobKey != st.BlobKey(raws[m.UID-1]) {
			t.Errorf("UID %d: bytes differ", m.UID)
		}
	}
	if len(uids) != 4 || uids[0] != 1 || uids[1] != 2 || uids[2] != 4 || uids[3] != 5 {
		t.Fatalf("copied UIDs %v, want [1 2 4 5]", uids)
	}
	p := e.Progress()
	if len(p) != 1 || p[0].Skipped != 1 || p[0].State != store.MigDone || len(p[0].Errors) == 0 || !strings.Contains(strings.Join(p[0].Errors, "\n"), "UID 3") {
		t.Fatalf("progress %+v", p)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Fatal(err)
	}
	r, err := e.Verify(ctx, "dave@mem.test", migrate.Credentials{Password: "DaveSecret1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Missing != 1 || r.Present != 4 || len(r.Folders) != 1 || len(r.Folders[0].Missing) != 1 || r.Folders[0].Missing[0] != 3 {
		t.Fatalf("verify: %+v", r)
	}
	if b, err := json.Marshal(r); err != nil || !strings.Contains(string(b), `"missing":[3]`) {
		t.Fatalf("report JSON %s %v", b, err)
	}
}
