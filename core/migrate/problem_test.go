package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailferry/core/migrate"
	"mailferry/core/store"
)

// poison is a marker in a message body that the quirky listener deletes
// from what the server sends, so that the literal announced is longer than
// what follows it: the client's parser refuses the response (as it refused
// Cyrus's literal8 before the fork learnt it).
var poison = []byte("XPOISON!")

type poisonConn struct {
	net.Conn
	on *atomic.Bool
}

func (c poisonConn) Write(b []byte) (int, error) {
	if c.on.Load() && bytes.Contains(b, poison) {
		if _, err := c.Conn.Write(bytes.ReplaceAll(b, poison, nil)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

type poisonListener struct {
	net.Listener
	on *atomic.Bool
}

func (l poisonListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return poisonConn{c, l.on}, nil
}

// switchableSession is brokenSession whose refusal can be lifted.
type switchableSession struct {
	brokenSession
	refuse *atomic.Bool
}

func (s *switchableSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if !s.refuse.Load() {
		return s.UserSession.Fetch(w, numSet, options)
	}
	return s.brokenSession.Fetch(w, numSet, options)
}

// TestProblemMessages: one message whose response the parser refuses and
// one the server answers NO for are retried alone, recorded with their old
// UID and the server's words, and the rest of the mailbox is copied; the
// account is done with 2 problems. A catch-up run, once the server serves
// them, copies both and clears the records. Before this, the unreadable
// message failed the whole account after six attempts.
func TestProblemMessages(t *testing.T) {
	u := imapmemserver.NewUser("erin@mem.test", "ErinSecret1")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	for i := 0; i < 6; i++ {
		raw := rawMessage("mem "+string(rune('a'+i)), 300)
		if i == 1 {
			raw = append(append([]byte("X-Note: "), poison...), append([]byte("\r\n"), raw...)...)
		}
		raws = append(raws, raw)
		if _, err := u.Append("INBOX", literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	var poisonOn, refuse atomic.Bool
	poisonOn.Store(true)
	refuse.Store(true)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &switchableSession{brokenSession: brokenSession{user: u, bad: 4}, refuse: &refuse}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(poisonListener{ln, &poisonOn})
	t.Cleanup(func() { srv.Close() })

	st, _ := setup(t, ln.Addr().String())
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, st, "mem.test", settingsFor(t, ln.Addr().String()), true); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, &migrate.Options{Retries: 2})
	acct, err := e.FirstLogin(ctx, "erin@mem.test", "ErinSecret1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, "erin@mem.test"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	copied := func() map[string]uint32 {
		msgs, _ := st.Messages(ctx, inbox.ID)
		out := map[string]uint32{}
		for _, m := range msgs {
			out[m.BlobKey] = m.UID
		}
		return out
	}
	got := copied()
	for i, raw := range raws {
		uid, ok := got[st.BlobKey(raw)]
		switch {
		case i == 1 || i == 3:
			if ok {
				t.Errorf("message UID %d copied although the server could not serve it", i+1)
			}
		case !ok || uid != uint32(i+1):
			t.Errorf("message UID %d: copied %v as UID %d", i+1, ok, uid)
		}
	}
	a, _ := st.Account(ctx, "erin@mem.test")
	if a.Migration != store.MigDone {
		t.Fatalf("account %q (%s), want done", a.Migration, a.MigrationError)
	}
	probs, err := st.CopyProblems(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 2 || probs[0].OldUID != 2 || probs[1].OldUID != 4 || probs[0].Mailbox != "INBOX" ||
		!strings.Contains(probs[0].Words, "could not be read") || !strings.Contains(probs[1].Words, "Message file is damaged") {
		t.Fatalf("problems %+v", probs)
	}

	refuse.Store(false) // Verify reads the old server; the NO one it can read now
	poisonOn.Store(false)
	r, err := e.Verify(ctx, "erin@mem.test", migrate.Credentials{Password: "ErinSecret1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Missing != 2 || len(r.Problems) != 2 || r.Problems[1].OldUID != 4 {
		t.Fatalf("verify: %+v", r)
	}
	if b, err := json.Marshal(r); err != nil || !strings.Contains(string(b), `"old_uid":4`) {
		t.Fatalf("report JSON %s %v", b, err)
	}
	refuse.Store(true)
	poisonOn.Store(true)

	// A catch-up while the server still cannot serve them counts a try.
	if n := e.CatchUp(ctx); n != 1 {
		t.Fatalf("catch-up scheduled %d accounts", n)
	}
	if err := e.Wait(ctx, "erin@mem.test"); err != nil {
		t.Fatal(err)
	}
	if probs, _ = st.CopyProblems(ctx, acct.ID); len(probs) != 2 || probs[0].Tries != 2 || probs[1].Tries != 2 {
		t.Fatalf("after a failed catch-up: problems %+v", probs)
	}

	// The server repaired: the next catch-up copies both, clears both.
	poisonOn.Store(false)
	refuse.Store(false)
	if n := e.CatchUp(ctx); n != 1 {
		t.Fatalf("catch-up scheduled %d accounts", n)
	}
	if err := e.Wait(ctx, "erin@mem.test"); err != nil {
		t.Fatal(err)
	}
	got = copied()
	for i, raw := range raws {
		if _, ok := got[st.BlobKey(raw)]; !ok {
			t.Errorf("message %d not copied after the repair", i+1)
		}
	}
	if len(got) != 6 {
		t.Errorf("%d messages, want 6", len(got))
	}
	if probs, _ = st.CopyProblems(ctx, acct.ID); len(probs) != 0 {
		t.Fatalf("after the repair: problems %+v", probs)
	}
}

// TestMissingBody: a FETCH response without the BODY[] asked for is never
// taken for an expunged message: the message is recorded as a problem (on
// main it was passed over silently: not copied, not reported).
func TestMissingBody(t *testing.T) {
	u := imapmemserver.NewUser("finn@mem.test", "FinnSecret1")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		raw := rawMessage("mem "+string(rune('a'+i)), 300)
		if _, err := u.Append("INBOX", literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	st, e, acct := copyFromMem(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}}, func() imapserver.Session { return &withoutBodySession{brokenSession: brokenSession{user: u, bad: 2}} }, "finn@mem.test", "FinnSecret1")
	ctx := context.Background()
	p := e.Progress()
	if len(p) != 1 || p[0].Skipped != 1 || p[0].State != store.MigDone {
		t.Fatalf("progress %+v, want one message reported", p)
	}
	probs, _ := st.CopyProblems(ctx, acct.ID)
	if len(probs) != 1 || probs[0].OldUID != 2 || !strings.Contains(probs[0].Words, "without its body") {
		t.Fatalf("problems %+v", probs)
	}
}

// withoutBodySession sends the bad message's UID, flags and date but not
// the body it was asked for.
type withoutBodySession struct {
	brokenSession
}

func (s *withoutBodySession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
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
	bare := *options
	bare.BodySection = nil
	return s.UserSession.Fetch(w, imap.UIDSetNum(s.bad), &bare)
}
