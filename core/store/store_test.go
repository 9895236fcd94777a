package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

func open(t testing.TB) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := store.OpenTest(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func account(t testing.TB, s *store.Store, addr string) *store.Account {
	t.Helper()
	ctx := context.Background()
	_, dom, err := store.SplitAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Domain(ctx, dom); errors.Is(err, store.ErrNotFound) {
		if _, err := s.CreateDomain(ctx, dom); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.CreateAccount(ctx, addr, "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDomainsAndAccounts(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	for _, bad := range []string{"", "a..b", "-a.test", "a b.test", "x@y"} {
		if _, err := s.CreateDomain(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateDomain(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.CreateDomain(ctx, "Example.TEST"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDomain(ctx, "example.test"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate domain: %v", err)
	}
	if _, err := s.CreateAccount(ctx, "bob@other.test", "pw", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account in unknown domain: %v", err)
	}
	a, err := s.CreateAccount(ctx, "Alice@example.test", "correct horse", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, "alice@EXAMPLE.test", "x", nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate account: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", "wrong"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "nobody@example.test", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	got, err := s.Authenticate(ctx, "ALICE@example.test", "correct horse")
	if err != nil || got.ID != a.ID {
		t.Fatalf("Authenticate = %v, %v", got, err)
	}
	if _, err := s.Mailbox(ctx, a.ID, "inbox"); err != nil {
		t.Fatalf("INBOX not created: %v", err)
	}
	if err := s.DeleteDomain(ctx, "example.test"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("delete domain with accounts: %v", err)
	}
	if err := s.DeleteAccount(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Accounts(ctx, ""); len(l) != 0 {
		t.Fatalf("accounts left: %v", l)
	}
}

func TestPasswordHash(t *testing.T) {
	store.EngineFree(t)
	h, err := store.HashPassword("pässword")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(h), []byte("pässword")) {
		t.Fatal("hash contains the password")
	}
	if !store.VerifyPassword(h, "pässword") || store.VerifyPassword(h, "password") || store.VerifyPassword("", "") {
		t.Fatal("VerifyPassword wrong")
	}
	h2, _ := store.HashPassword("pässword")
	if h == h2 {
		t.Fatal("no salt")
	}
}

func TestAppendWithOldUIDsAndExactBytes(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	a := account(t, s, "a@example.test")
	mb, err := s.CreateMailbox(ctx, a.ID, "Données/Été 2020", &store.MailboxOptions{UIDValidity: 1234, UIDNext: 50, Migration: store.MigRunning})
	if err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("", -(7*3600 + 30*60))
	date := time.Date(2019, 3, 4, 5, 6, 7, 0, zone)
	raw := []byte("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nno final CRLF")
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{7, 3, 42} {
		if _, err := tx.Append(mb.ID, &store.NewMessage{UID: uid, Flags: []string{`\Seen`, "$Work", "$work"}, InternalDate: date, Body: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.SetMailboxMigration(mb.ID, store.MigDone, 42); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Duplicate old UID is refused, and after the copy is done a UID below
	// UIDNEXT is not handed out again.
	if _, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{UID: 7, Body: raw}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate UID: %v", err)
	}
	if _, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{UID: 10, Body: raw}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("UID below UIDNEXT after migration: %v", err)
	}
	m, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{UID: 7, Renumber: true, Body: []byte("x")})
	if err != nil || m.UID != 50 {
		t.Fatalf("renumbered append: %v %v", m, err)
	}
	local, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{Body: []byte("local")})
	if err != nil || local.UID != 51 {
		t.Fatalf("local append UID = %v, %v; want 51", local, err)
	}
	s.Close()

	s2, err := store.OpenTest(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mb2, err := s2.Mailbox(ctx, a.ID, "Données/Été 2020")
	if err != nil {
		t.Fatal(err)
	}
	if mb2.UIDValidity != 1234 || mb2.UIDNext != 52 || mb2.MigratedUID != 42 || mb2.Migration != store.MigDone {
		t.Fatalf("mailbox after reopen: %+v", mb2)
	}
	msgs, err := s2.Messages(ctx, mb2.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if want := []uint32{3, 7, 42, 50, 51}; !equalUIDs(uids, want) {
		t.Fatalf("UIDs %v, want %v", uids, want)
	}
	m0 := msgs[0]
	if !m0.InternalDate.Equal(date) {
		t.Errorf("date %v, want %v", m0.InternalDate, date)
	}
	if _, off := m0.InternalDate.Zone(); off != -(7*3600 + 30*60) {
		t.Errorf("zone offset %d lost", off)
	}
	if len(m0.Flags) != 2 || m0.Flags[0] != `\Seen` || m0.Flags[1] != "$Work" {
		t.Errorf("flags %q", m0.Flags)
	}
	body, err := s2.Blob(ctx, m0.BlobKey)
	if err != nil || !bytes.Equal(body, raw) {
		t.Fatalf("bytes changed: %q %v", body, err)
	}
}

func equalUIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFlagsExpungeCopyMoveAndBlobRefs(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	arch, err := s.CreateMailbox(ctx, a.ID, "Archive", &store.MailboxOptions{SpecialUse: `\Archive`})
	if err != nil {
		t.Fatal(err)
	}
	shared := []byte("Subject: same\r\n\r\nbody\r\n")
	for i := 0; i < 3; i++ {
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: shared}); err != nil {
			t.Fatal(err)
		}
	}
	w := s.Watch(a.ID)
	defer w.Close()
	ms, err := s.StoreFlags(ctx, inbox.ID, []uint32{1, 2, 99}, store.FlagsAdd, []string{`\Deleted`, "Work"})
	if err != nil || len(ms) != 2 {
		t.Fatalf("StoreFlags: %v %v", ms, err)
	}
	select {
	case <-w.C:
	case <-time.After(time.Second):
		t.Fatal("no change notification")
	}
	st, _ := s.Status(ctx, inbox.ID)
	if st.Messages != 3 || st.Deleted != 2 || st.Unseen != 3 {
		t.Fatalf("status %+v", st)
	}
	pairs, err := s.Copy(ctx, inbox.ID, []uint32{1, 3}, arch.ID)
	if err != nil || len(pairs) != 2 || pairs[0] != (store.UIDPair{Src: 1, Dst: 1}) || pairs[1] != (store.UIDPair{Src: 3, Dst: 2}) {
		t.Fatalf("copy: %v %v", pairs, err)
	}
	gone, err := s.Expunge(ctx, inbox.ID, []uint32{2})
	if err != nil || len(gone) != 1 || gone[0] != 2 {
		t.Fatalf("UID EXPUNGE 2: %v %v", gone, err)
	}
	gone, err = s.Expunge(ctx, inbox.ID, nil)
	if err != nil || len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("EXPUNGE: %v %v", gone, err)
	}
	if _, err := s.Move(ctx, arch.ID, []uint32{1, 2}, inbox.ID); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Messages(ctx, arch.ID); len(l) != 0 {
		t.Fatalf("moved messages still in source: %d", len(l))
	}
	l, _ := s.Messages(ctx, inbox.ID)
	if len(l) != 3 || l[1].UID != 4 || l[2].UID != 5 {
		t.Fatalf("inbox after move: %d msgs", len(l))
	}
	if err := s.DeleteAccount(ctx, "a@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blob(ctx, l[0].BlobKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob left after its last message went: %v", err)
	}
}

func TestRenameAndSubscribe(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	for _, n := range []string{"Work", "Work/2020", "Work/2020/Q1", "Workshop"} {
		if _, err := s.CreateMailbox(ctx, a.ID, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenameMailbox(ctx, a.ID, "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	l, _ := s.Mailboxes(ctx, a.ID)
	var names []string
	for _, m := range l {
		names = append(names, m.Name)
	}
	want := []string{"INBOX", "Job", "Job/2020", "Job/2020/Q1", "Workshop"}
	if len(names) != len(want) {
		t.Fatalf("names %q", names)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("names %q, want %q", names, want)
		}
	}
	if err := s.RenameMailbox(ctx, a.ID, "Job", "Job/2020/x"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("rename below itself: %v", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "Job", "Workshop"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	if err := s.SetSubscribed(ctx, a.ID, "Job", true); err != nil {
		t.Fatal(err)
	}
	mb, _ := s.Mailbox(ctx, a.ID, "Job")
	if !mb.Subscribed {
		t.Fatal("not subscribed")
	}
	if err := s.DeleteMailbox(ctx, a.ID, "INBOX"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("delete INBOX: %v", err)
	}
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("hi")})
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Mailbox(ctx, a.ID, "Old")
	if l, _ := s.Messages(ctx, old.ID); len(l) != 1 {
		t.Fatal("INBOX rename did not move messages")
	}
	if l, _ := s.Messages(ctx, inbox.ID); len(l) != 0 {
		t.Fatal("INBOX not emptied")
	}
}

// benchInbox opens a store with one INBOX and returns it with a 48 KB body
// for the append benchmarks, the timer reset.
func benchInbox(b *testing.B, ctx context.Context) (*store.Store, *store.Mailbox, []byte) {
	s, _ := open(b)
	a := account(b, s, "a@example.test")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	body := bytes.Repeat([]byte("0123456789abcdef"), 3000)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	return s, inbox, body
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	s, inbox, body := benchInbox(b, ctx)
	for i := 0; i < b.N; i += 200 {
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for j := i; j < i+200 && j < b.N; j++ {
			body[0] = byte(j)
			body[1] = byte(j >> 8)
			body[2] = byte(j >> 16)
			if _, err := tx.Append(inbox.ID, &store.NewMessage{Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendOne is an IMAP APPEND or an SMTP delivery: one 4 KiB
// message per write transaction, on disk before it returns. On PostgreSQL
// (MAILFERRY_PGTEST_FSYNC=1 for a cluster that fsyncs, as SQLite does
// with synchronous=FULL) each also takes the writer lock and notifies.
func BenchmarkAppendOne(b *testing.B) {
	ctx := context.Background()
	s, _ := open(b)
	a := account(b, s, "bench@example.test")
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 64)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.Logf("%s: %d messages, %.0f msgs/s", s.Engine(), b.N, float64(b.N)/time.Since(start).Seconds())
}

// BenchmarkStageAppend is the migration's way in: bodies staged outside
// the transaction, then appended with their old UIDs in batches of 200,
// under a cancellable context as the engine uses.
func BenchmarkStageAppend(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, inbox, body := benchInbox(b, ctx)
	for i := 0; i < b.N; i += 200 {
		var msgs []*store.NewMessage
		for j := i; j < i+200 && j < b.N; j++ {
			body[0], body[1], body[2] = byte(j), byte(j>>8), byte(j>>16)
			sb, err := s.Stage(body)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, &store.NewMessage{UID: uint32(j + 1), Staged: sb})
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if _, err := tx.Append(inbox.ID, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// Two Stores on one database (serve and the CLI's migrate are two
// processes) each write their own pack; one opening, writing or compacting
// never damages what the other writes, staged or committed.
func TestTwoStoresShareOnePackDirectory(t *testing.T) {
	ctx := context.Background()
	s1, path := open(t)
	a := account(t, s1, "a@example.test")
	inbox, _ := s1.Mailbox(ctx, a.ID, "INBOX")
	body := func(i int) []byte {
		return []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte{'a' + byte(i%26)}, 100+i)))
	}
	// s1 stages a body and has not committed it when s2 opens.
	staged, err := s1.Stage(body(0))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := store.OpenTest(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: body(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AppendMessage(ctx, inbox.ID, &store.NewMessage{Staged: staged}); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 40; i++ {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: body(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*store.Store{s1, s2} {
		msgs, err := s.Messages(ctx, inbox.ID)
		if err != nil || len(msgs) != 40 {
			t.Fatalf("%d messages, %v", len(msgs), err)
		}
		got := map[string]bool{}
		for _, m := range msgs {
			b, err := s.Blob(ctx, m.BlobKey)
			if err != nil {
				t.Fatal(err)
			}
			got[string(b)] = true
		}
		for i := 0; i < 40; i++ {
			if !got[string(body(i))] {
				t.Fatalf("message %d is not served as written", i)
			}
		}
	}
}

// AppendMany stores a batch exactly as Append one by one would: UIDs,
// MODSEQs, IDs, bytes; a taken UID fails the batch and changes nothing.
func TestAppendMany(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	var msgs []*store.NewMessage
	for i := 0; i < 100; i++ { // 64 + 32 + 4 rows
		body := []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
		m := &store.NewMessage{Flags: []string{`\Seen`, "$Label1"}, InternalDate: time.Unix(int64(1e9+i), 0).In(time.FixedZone("", 3600)), Body: body}
		if i%2 == 1 { // half staged, as the migration gives them
			sb, err := s.Stage(body)
			if err != nil {
				t.Fatal(err)
			}
			m.Body, m.Staged = nil, sb
		}
		msgs = append(msgs, m)
	}
	msgs[99].Body, msgs[99].Staged = msgs[98].Body, nil // the same bytes twice: one blob
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tx.AppendMany(inbox.ID, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(ctx, inbox.ID)
	if st.Messages != 100 || st.UIDNext != 101 {
		t.Fatalf("status %+v", st)
	}
	for i, m := range out {
		got, err := s.Message(ctx, inbox.ID, uint32(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || m.ID == 0 || got.ModSeq != m.ModSeq || (i > 0 && m.ModSeq != out[i-1].ModSeq+1) {
			t.Fatalf("message %d: stored %+v, returned %+v", i, got, m)
		}
		want := msgs[i].Body
		if msgs[i].Staged != nil {
			want = []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
		}
		b, err := s.Blob(ctx, got.BlobKey)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("message %d bytes %q, %v", i, b, err)
		}
		if !got.InternalDate.Equal(msgs[i].InternalDate) || len(got.Flags) != 2 {
			t.Fatalf("message %d: %v %v", i, got.InternalDate, got.Flags)
		}
	}
	// A batch with one taken UID changes nothing; with Renumber it goes in.
	again := []*store.NewMessage{{Body: []byte("new\r\n")}, {UID: 5, Body: []byte("taken\r\n")}}
	tx, _ = s.Begin(ctx)
	if _, err := tx.AppendMany(inbox.ID, again); !errors.Is(err, store.ErrExists) {
		t.Fatalf("taken UID: %v", err)
	}
	again[1].Renumber = true
	out, err = tx.AppendMany(inbox.ID, again)
	if err != nil || out[0].UID != 101 || out[1].UID != 102 {
		t.Fatalf("renumbered: %v, %v", out, err)
	}
	tx.Rollback()
	if st2, _ := s.Status(ctx, inbox.ID); st2.Messages != 100 || st2.UIDNext != 101 || st2.HighestModSeq != st.HighestModSeq {
		t.Fatalf("after rollback %+v, before %+v", st2, st)
	}
}

// Usages counts every account's mailboxes (empty ones too), messages and
// bytes, as Status of each mailbox would add up.
func TestUsages(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	b := account(t, s, "b@example.test")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	if _, err := s.CreateMailbox(ctx, a.ID, "Empty", nil); err != nil {
		t.Fatal(err)
	}
	var bytes int64
	for i := 0; i < 3; i++ {
		body := []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i*10)))
		bytes += int64(len(body))
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.Usages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := u[a.ID]; got != (store.Usage{Folders: 2, Messages: 3, Bytes: bytes}) {
		t.Fatalf("a: %+v, want 2 folders, 3 messages, %d bytes", got, bytes)
	}
	if got := u[b.ID]; got != (store.Usage{Folders: 1}) {
		t.Fatalf("b (an empty INBOX): %+v", got)
	}
}

// A read error halfway through the messages Expunge looks at (here a
// damaged page of the database) fails the expunge; it is not taken for
// the end of the list, with the messages read so far expunged and success
// reported. (With this damage SQLite also fails the deletes that follow,
// so Expunge failed before it checked rows.Err too; the check is what
// makes the outcome not depend on that.)
func TestExpungeReadErrorFails(t *testing.T) {
	store.SQLiteOnly(t)
	ctx := context.Background()
	s, path := open(t)
	a := account(t, s, "a@example.test")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	const n, late = 200, 150
	// Message late has a keyword longer than a page: SQLite keeps it in a
	// chain of overflow pages, the second of which gets damaged.
	big := "kw" + strings.Repeat("x", 10000) + "MARK" + strings.Repeat("y", 20000)
	for i := 1; i <= n; i++ {
		flags := []string{`\Deleted`}
		if i == late {
			flags = append(flags, big)
		}
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Flags: flags, Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i))}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(raw, []byte("xMARKy"))
	if off < 0 {
		t.Fatal("the long keyword is not in the database file")
	}
	const pageSize = 8192
	page := off - off%pageSize
	if next := binary.BigEndian.Uint32(raw[page:]); next == 0 {
		t.Fatal("the damaged page would end the overflow chain: the test tests nothing")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The next page of the chain is now one past the end of the file.
	if _, err := f.WriteAt(binary.BigEndian.AppendUint32(nil, uint32(len(raw)/pageSize+1)), int64(page)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, err = store.OpenTest(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// UIDs before the damaged message, and one after it.
	uids := []uint32{1, 2, 3, late + 10}
	gone, err := s.Expunge(ctx, inbox.ID, uids)
	if err == nil {
		t.Fatalf("Expunge of %v over a damaged page reported success, with %v expunged", uids, gone)
	}
}

// TestRenameImpliedParent: a name that is no mailbox but has mailboxes
// below it (IMAP's CREATE a/b leaves "a" so) renames its children; one
// with nothing below it is ErrNotFound, and a child name taken fails the
// whole rename.
func TestRenameImpliedParent(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	for _, n := range []string{"P/a/b", "P/a/b/c", "P/ab", "Q/b"} {
		if _, err := s.CreateMailbox(ctx, a.ID, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenameMailbox(ctx, a.ID, "P/a", "R"); err != nil {
		t.Fatal(err)
	}
	names := func() string {
		l, _ := s.Mailboxes(ctx, a.ID)
		var n []string
		for _, m := range l {
			n = append(n, m.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(); got != "INBOX,P/ab,Q/b,R/b,R/b/c" {
		t.Fatalf("after renaming an implied parent: %s", got)
	}
	for _, from := range []string{"P/a", "Nothing", "P/a/"} {
		if err := s.RenameMailbox(ctx, a.ID, from, "S"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rename %q: %v, want ErrNotFound", from, err)
		}
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "T/b", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "Q", "T"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto a taken child name: %v", err)
	}
	if got := names(); got != "INBOX,P/ab,Q/b,R/b,R/b/c,T/b" {
		t.Fatalf("after a failed rename: %s", got)
	}
}
