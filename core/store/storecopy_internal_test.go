package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/internal/s3test"
)

// copyTarget opens an empty target on the run's engine, its bytes in packs
// or, with s3, in a fresh bucket behind a proxy the test controls.
func copyTarget(t *testing.T, s3 bool) (*Store, *flakyProxy) { return copyTargetOn(t, s3) }

// copyTargetTB is copyTarget with object storage, straight (no proxy).
func copyTargetTB(tb testing.TB) *Store {
	tb.Helper()
	srv := s3test.Shared(tb)
	dst, err := testOpen(tb, filepath.Join(tb.TempDir(), "target.db"), &Options{ChangePoll: -1, Objects: s3Options(srv.Endpoint, srv.Bucket(tb))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dst.Close() })
	return dst
}

func copyTargetOn(t *testing.T, s3 bool) (*Store, *flakyProxy) {
	t.Helper()
	opts := &Options{ChangePoll: -1}
	var px *flakyProxy
	if s3 {
		srv := s3test.Shared(t)
		px = newFlakyProxy(t, srv.Endpoint)
		px.set(proxyPass)
		opts.Objects = s3Options(px.addr(), srv.Bucket(t))
		opts.Objects.Timeout = 5 * time.Second
	}
	dst, err := testOpen(t, filepath.Join(t.TempDir(), "target.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return dst, px
}

// copySource opens an embedded store (SQLite + packs), exclusively, as
// `store copy` does.
func copySourceStore(t *testing.T) (*Store, string) { return copySourceStoreTB(t) }

func copySourceStoreTB(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mailferry.db")
	src, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, path
}

// fillSource gives src something of every table Copy moves, and returns
// the bodies it appended by mailbox name.
func fillSource(t *testing.T, src *Store, big bool) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := src.CreateDomain(ctx, "example.test")
	must(err)
	must(src.SetDomainMigration(ctx, "example.test", true, "imap.old.test:993"))
	must(src.SetOutboundRoute(ctx, "example.test", "smarthost:relay.test:587"))
	must(src.SetOldServerLearnt(ctx, "example.test", `{"login":"bare"}`))
	must(src.ReplaceKnownUsers(ctx, "example.test", []string{"alice@example.test", "bob@example.test", "carol@example.test"}))
	must(src.SetRouteProof(ctx, "example.test", RouteProof{Route: "mx", Rcpt: "x@else.test", Remote: "mx.else.test", Reply: "250 ok", At: time.UnixMilli(1700000000123)}))
	must(src.SetMTASTSPolicy(ctx, "else.test", MTASTSPolicy{ID: "20240101", Policy: "version: STSv1\nmode: enforce\n", Expires: time.UnixMilli(1900000000000)}))

	alice, err := src.CreateAccount(ctx, "alice@example.test", "Alice-pass-1", &AccountOptions{
		Migration: MigRunning, OldLogin: "alice", Inbox: &MailboxOptions{UIDValidity: 1234567, UIDNext: 40, Migration: MigRunning}})
	must(err)
	bob, err := src.CreateAccount(ctx, "bob@example.test", "Bob-pass-1", nil)
	must(err)
	inbox, err := src.Mailbox(ctx, alice.ID, "INBOX")
	must(err)
	sent, err := src.CreateMailbox(ctx, alice.ID, "Sent", &MailboxOptions{UIDValidity: 99, UIDNext: 7, SpecialUse: `\Sent`, Subscribed: true})
	must(err)
	gone, err := src.CreateMailbox(ctx, alice.ID, "Old/Stuff", &MailboxOptions{UIDValidity: 5000000, Subscribed: true})
	must(err)
	_ = gone
	must(src.DeleteMailbox(ctx, alice.ID, "Old/Stuff")) // a kept subscription, and uidvalidity_top above every mailbox's

	hostile := []byte("From: a@example.test\nSubject: bare LF and NUL\n\nline\x00one\nline\r\ntwo\r\n\x00")
	var msgs []*NewMessage
	for i := 1; i <= 12; i++ {
		msgs = append(msgs, &NewMessage{UID: uint32(i * 3), Flags: []string{`\Seen`, "$Label" + fmt.Sprint(i%3)},
			InternalDate: time.Date(2020, 1, i, 10, 0, 0, 0, time.FixedZone("", (i-6)*3600)),
			Body:         []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))})
	}
	msgs = append(msgs, &NewMessage{UID: 39, Body: hostile, Flags: []string{`\Flagged`}, InternalDate: time.Unix(1600000000, 0).UTC()})
	t0, err := src.Begin(ctx)
	must(err)
	_, err = t0.AppendMany(inbox.ID, msgs)
	must(err)
	must(t0.Commit())
	// The same bytes twice (dedup) in another mailbox, and the big one.
	sentMsgs := []*NewMessage{{Body: hostile}, {Body: []byte("Subject: m1\r\n\r\nbody 1\r\n"), Flags: []string{`\Answered`}}}
	if big {
		b := bytes.Repeat([]byte("0123456789abcdef\x00\n"), 20<<20/18)
		sentMsgs = append(sentMsgs, &NewMessage{Body: append([]byte("Subject: big\r\n\r\n"), b...)})
	}
	for _, m := range sentMsgs {
		_, err = src.AppendMessage(ctx, sent.ID, m)
		must(err)
	}
	_, err = src.StoreFlags(ctx, inbox.ID, []uint32{3, 6}, FlagsAdd, []string{`\Deleted`})
	must(err)
	_, err = src.Expunge(ctx, inbox.ID, []uint32{3})
	must(err)
	_, err = src.ClaimRecent(ctx, inbox.ID, 20)
	must(err)
	must(src.SetMailboxMigration(ctx, inbox.ID, MigRunning, 30))
	must(src.RecordCopyProblem(ctx, inbox.ID, "INBOX", 31, "the old server says: NO message gone"))
	must(src.SetCopyWait(ctx, CopyWait{AccountID: alice.ID, Kind: "retry", Reason: "old server busy", Until: time.UnixMilli(1800000000000)}))
	bobInbox, err := src.Mailbox(ctx, bob.ID, "INBOX")
	must(err)
	_, err = src.AppendMessage(ctx, bobInbox.ID, &NewMessage{Body: []byte("Subject: for bob\r\n\r\nhello\r\n"), Flags: []string{"$Forwarded"}})
	must(err)
	must(src.KeepUIDLs(ctx, bob.ID, []KeptUIDL{{UIDL: "UID1-abc", BlobKey: strings.Repeat("ab", 32)}}))
	t1, err := src.Begin(ctx)
	must(err)
	_, err = t1.Enqueue("alice@example.test", []string{"x@else.test"}, []byte("Subject: out\r\n\r\nqueued\x00\n"), "note")
	must(err)
	must(t1.Commit())
}

// A whole embedded store copied into an empty one (each engine, packs and
// object storage) is the same store afterwards, row for row and byte for
// byte, and the target goes on numbering after the copied rows.
func TestStoreCopy(t *testing.T) {
	for _, s3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "packs", true: "s3"}[s3], func(t *testing.T) {
			ctx := context.Background()
			src, _ := copySourceStore(t)
			fillSource(t, src, true)
			dst, _ := copyTarget(t, s3)
			var seen []CopyProgress
			p, err := Copy(ctx, src, dst, &CopyOptions{Progress: func(p CopyProgress) { seen = append(seen, p) }})
			if err != nil {
				t.Fatal(err)
			}
			if p.Accounts != 2 || p.AccountsTotal != 2 || p.Messages != 16 || p.Queue != 1 || len(seen) == 0 {
				t.Fatalf("progress %+v (%d reports)", p, len(seen))
			}
			if p.Bytes < 20<<20 {
				t.Errorf("moved %d bytes, want the 20 MB message's at least", p.Bytes)
			}
			r, err := VerifyCopy(ctx, src, dst, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !r.OK() || r.Accounts != 2 || r.Messages != 16 || r.Blobs != 16 {
				t.Fatalf("verify: %+v", r)
			}
			// Reference counts: each blob row counts the rows naming it.
			var bad int
			if err := dst.r.QueryRow(`SELECT count(*) FROM blobs b WHERE refs <> (SELECT count(*) FROM messages WHERE blob = b.key) + (SELECT count(*) FROM queue WHERE blob = b.key)`).Scan(&bad); err != nil || bad != 0 {
				t.Fatalf("%d blobs with a wrong reference count (%v)", bad, err)
			}
			if _, _, underway, _ := dst.CopyUnderway(ctx); underway {
				t.Fatal("the marker is left after a complete copy")
			}
			// Through the API: bytes, UIDs, flags, dates, the password.
			a, inbox := aliceInbox(t, dst)
			if inbox.UIDValidity != 1234567 || inbox.UIDNext != 40 {
				t.Errorf("INBOX UIDVALIDITY %d UIDNEXT %d", inbox.UIDValidity, inbox.UIDNext)
			}
			sinbox, _ := src.Mailbox(ctx, a.ID, "INBOX")
			want, _ := src.Messages(ctx, sinbox.ID)
			got, err := dst.Messages(ctx, inbox.ID)
			if err != nil || len(got) != len(want) || len(got) != 12 {
				t.Fatalf("%d messages, want %d (%v)", len(got), len(want), err)
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.UID != w.UID || strings.Join(g.Flags, " ") != strings.Join(w.Flags, " ") || !g.InternalDate.Equal(w.InternalDate) || g.ModSeq != w.ModSeq {
					t.Errorf("message %d: got %+v, want %+v", i, g, w)
				}
				_, goff := g.InternalDate.Zone()
				_, woff := w.InternalDate.Zone()
				if goff != woff {
					t.Errorf("UID %d: zone %d, want %d", g.UID, goff, woff)
				}
				gb, err := dst.Blob(ctx, g.BlobKey)
				wb, _ := src.Blob(ctx, w.BlobKey)
				if err != nil || !bytes.Equal(gb, wb) {
					t.Errorf("UID %d: bytes differ (%v)", g.UID, err)
				}
			}
			if subs, _ := dst.KeptSubscriptions(ctx, a.ID); len(subs) != 1 || subs[0] != "Old/Stuff" {
				t.Errorf("kept subscriptions %v", subs)
			}
			// New rows are numbered after the copied ones, and a new
			// mailbox's UIDVALIDITY stays above every one the account gave.
			if _, err := dst.CreateAccount(ctx, "dave@example.test", "Dave-pass-1", nil); err != nil {
				t.Fatalf("a new account in the target: %v", err)
			}
			nb, err := dst.CreateMailbox(ctx, a.ID, "New", nil)
			if err != nil {
				t.Fatal(err)
			}
			if nb.UIDValidity <= 5000000 {
				t.Errorf("new mailbox UIDVALIDITY %d, not above the deleted one's 5000000", nb.UIDValidity)
			}
			m, err := dst.AppendMessage(ctx, inbox.ID, &NewMessage{Body: []byte("Subject: after\r\n\r\n")})
			if err != nil || m.UID != 40 {
				t.Fatalf("append after the copy: UID %v, %v", m, err)
			}
			q, err := dst.Queue(ctx)
			if err != nil || len(q) != 1 {
				t.Fatalf("queue %v, %v", q, err)
			}
			tq, _ := dst.Begin(ctx)
			id, err := tq.Enqueue("a@example.test", []string{"b@else.test"}, []byte("x"), "")
			if err != nil || tq.Commit() != nil || id <= q[0].ID {
				t.Fatalf("a new queue item got ID %d (copied %d), %v", id, q[0].ID, err)
			}
		})
	}
}

// Verify tells a difference, in words, and a copy into a store holding
// anything is refused without touching it.
func TestStoreCopyRefusesAndVerifyTells(t *testing.T) {
	ctx := context.Background()
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	dst, _ := copyTarget(t, false)
	if _, err := dst.CreateDomain(ctx, "other.test"); err != nil {
		t.Fatal(err)
	}
	_, err := Copy(ctx, src, dst, nil)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "1 domains") {
		t.Fatalf("copy into a store with a domain: %v", err)
	}
	if held, _ := dst.holdings(ctx); held != "1 domains" {
		t.Fatalf("the refused target now has %s", held)
	}

	dst2, _ := copyTarget(t, false)
	if _, err := Copy(ctx, src, dst2, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := dst2.Account(ctx, "alice@example.test")
	inbox, _ := dst2.Mailbox(ctx, a.ID, "INBOX")
	if _, err := dst2.StoreFlags(ctx, inbox.ID, []uint32{9}, FlagsAdd, []string{"$Changed"}); err != nil {
		t.Fatal(err)
	}
	r, err := VerifyCopy(ctx, src, dst2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !strings.Contains(strings.Join(r.Differences, "\n"), "uid=9) differs in flags") {
		t.Fatalf("verify after a flag changed in the target: %+v", r)
	}
	// A second copy into the now complete target is refused too.
	if _, err := Copy(ctx, src, dst2, nil); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("copy into a complete copy: %v", err)
	}
}

// A source in use (a serve has it open) is not opened exclusively, and a
// source opened exclusively keeps every other open out.
func TestStoreCopySourceLocked(t *testing.T) {
	sqliteOnly(t)
	path := filepath.Join(t.TempDir(), "mailferry.db")
	serving, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{ChangePoll: -1, Exclusive: true}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("exclusive open of a store in use: %v", err)
	}
	// Another ordinary open (migrate beside serve) still works.
	other, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	serving.Close()
	excl, err := Open(path, &Options{ChangePoll: -1, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{ChangePoll: -1}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "store copy") {
		t.Fatalf("open of a store being copied: %v", err)
	}
	excl.Close()
	again, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatalf("open after the copy closed: %v", err)
	}
	again.Close()
	if st, err := os.Stat(path + "-lock"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", st, err)
	}
}

// Object storage failing mid-copy fails the copy in words with the
// account it was at; the accounts before stay, the target says a copy is
// under way, and a rerun finishes with nothing twice.
func TestStoreCopyResumesAfterObjectStorageDown(t *testing.T) {
	ctx := context.Background()
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	dst, px := copyTarget(t, true)
	_, err := Copy(ctx, src, dst, &CopyOptions{Progress: func(p CopyProgress) {
		if p.Accounts == 1 && p.Account == "" {
			px.set(proxyRefuse) // after alice, before bob
		}
	}})
	if err == nil || !errors.Is(err, ErrNotDurable) && !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "bob@example.test") {
		t.Fatalf("copy with object storage down: %v", err)
	}
	t.Logf("error: %v", err)
	if _, _, underway, _ := dst.CopyUnderway(ctx); !underway {
		t.Fatal("no marker after a failed copy")
	}
	if _, err := dst.Account(ctx, "bob@example.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half of bob is in the target: %v", err)
	}
	px.set(proxyPass)
	p, err := Copy(ctx, src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed != 1 || p.Accounts != 2 {
		t.Fatalf("rerun: %+v", p)
	}
	r, err := VerifyCopy(ctx, src, dst, 0)
	if err != nil || !r.OK() {
		t.Fatalf("verify after the rerun: %+v %v", r, err)
	}
}

// A cancelled copy leaves whole accounts only, and a rerun finishes it.
func TestStoreCopyCancel(t *testing.T) {
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	dst, _ := copyTarget(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Copy(ctx, src, dst, &CopyOptions{Progress: func(p CopyProgress) {
		if p.Account == "bob@example.test" {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if _, err := dst.Account(context.Background(), "bob@example.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob after the cancel: %v", err)
	}
	// The half-copied store is no source for another copy.
	other, _ := copyTarget(t, false)
	if _, err := Copy(context.Background(), dst, other, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unfinished copy") {
		t.Fatalf("copy of a half-copied store: %v", err)
	}
	if _, err := Copy(context.Background(), src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := VerifyCopy(context.Background(), src, dst, 0); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

// Every table of the schema is either copied or said not to be, and a
// source with a table Copy does not know is refused.
func TestStoreCopyKnowsEveryTable(t *testing.T) {
	ctx := context.Background()
	dst, _ := copyTarget(t, false)
	c := &copier{src: dst, dst: dst}
	if err := c.checkTables(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.w.Exec(`CREATE TABLE newer_feature (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := c.checkTables(ctx); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "newer_feature") {
		t.Fatalf("a source with an unknown table: %v", err)
	}
}

// TestStoreCopyRefusesBucketInUse: a target whose database is empty but
// whose bucket already holds message bytes (another store's: the source's
// own bucket reached through another configuration, or a live
// deployment's) is refused, changing nothing. Filling it would make two
// stores share one bucket, and either's Compact sweeps the objects only
// the other names: mail lost. The bucket's marker names the store using
// it, so such a target does not even open (identity.go); blobs left in a
// target's own bucket (by a store emptied since) are refused by Copy.
func TestStoreCopyRefusesBucketInUse(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	open := func() (*Store, error) {
		s, err := testOpen(t, filepath.Join(t.TempDir(), "target.db"), &Options{ChangePoll: -1, Objects: s3Options(srv.Endpoint, bucket)})
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, src, first, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := open(); !errors.Is(err, ErrWrongBucket) || !strings.Contains(err.Error(), first.ID()) {
		t.Fatalf("a second store on the bucket of a copy's target: %v", err)
	}

	// A target marked as its own whose bucket holds blobs its database
	// does not name.
	second, _ := copyTarget(t, true)
	stray := fbody(77, 1<<10)
	if err := second.objects.put(ctx, fkey(stray), stray); err != nil {
		t.Fatal(err)
	}
	_, err = Copy(ctx, src, second, nil)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("copy into an empty database on a bucket holding message bytes: %v", err)
	}
	if _, _, underway, err := second.CopyUnderway(ctx); err != nil || underway {
		t.Fatalf("the refused target was marked (%v, %v)", underway, err)
	}
	if held, _ := second.holdings(ctx); held != "" {
		t.Fatalf("the refused target now has %s", held)
	}
}

// TestStoreCopyRefusesServedSource: a PostgreSQL source that a node (of
// another machine, which the source's lock does not reach) still serves
// is refused, changing nothing in the target.
func TestStoreCopyRefusesServedSource(t *testing.T) {
	if testEngine != EnginePostgres {
		t.Skip("the lock file keeps every process of one machine out of a SQLite source")
	}
	ctx := context.Background()
	src, err := testOpen(t, filepath.Join(t.TempDir(), "source.db"), &Options{ChangePoll: -1, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	fillSource(t, src, false)
	if err := src.NodeBeat(ctx, "mail2:/var/lib/mailferry", "v1", time.Now()); err != nil {
		t.Fatal(err)
	}
	dst, _ := copyTarget(t, false)
	_, err = Copy(ctx, src, dst, nil)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "mail2:/var/lib/mailferry") {
		t.Fatalf("copy of a source a node serves: %v", err)
	}
	if held, _ := dst.holdings(ctx); held != "" {
		t.Fatalf("the target now has %s", held)
	}
	// Stopped cleanly: copied.
	if err := src.NodeGone(ctx, "mail2:/var/lib/mailferry"); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, src, dst, nil); err != nil {
		t.Fatal(err)
	}
}

// aliceInbox logs in as fillSource's alice on a copy's target and
// returns her account and INBOX.
func aliceInbox(t *testing.T, dst *Store) (*Account, *Mailbox) {
	t.Helper()
	ctx := context.Background()
	a, err := dst.Authenticate(ctx, "alice@example.test", "Alice-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := dst.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return a, inbox
}
