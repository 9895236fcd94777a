package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mailferry/core/store"
)

// Helpers for the pack tests.

// openAt opens the store at path with the given pack size and closes it at
// the end of the test (closing it earlier is fine).
func openAt(t testing.TB, path string, packSize int64) *store.Store {
	t.Helper()
	s, err := store.OpenTest(t, path, &store.Options{PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "mail.db") }

// body makes n bytes (n >= 8) unique to seed: binary, with NULs, bare CRs
// and LFs, so that any change on the way is seen.
func body(seed uint64, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, seed)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := 8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// keyOf is b's key in a store made by the tests (a new store: BLAKE3's).
func keyOf(b []byte) string {
	h := store.NewKeyHashBoth()
	h.Write(b)
	return h.Key()
}

// packFiles lists the pack files of the store at path, by name, with their
// sizes.
func packFiles(t testing.TB, path string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(path + "-packs")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pack") {
			continue
		}
		st, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = st.Size()
	}
	return out
}

func total(files map[string]int64) int64 {
	var n int64
	for _, size := range files {
		n += size
	}
	return n
}

// newestPack is the name of the highest-numbered pack file.
func newestPack(files map[string]int64) string {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1]
}

func inboxOf(t testing.TB, s *store.Store, addr string) (*store.Account, int64) {
	t.Helper()
	a := account(t, s, addr)
	mb, err := s.Mailbox(context.Background(), a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return a, mb.ID
}

// checkMailbox checks that a mailbox holds exactly the messages of want (by
// UID), each served byte for byte.
func checkMailbox(t testing.TB, s *store.Store, mailboxID int64, want map[uint32][]byte) {
	t.Helper()
	ctx := context.Background()
	msgs, err := s.Messages(ctx, mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("mailbox %d holds %d messages, want %d", mailboxID, len(msgs), len(want))
	}
	for _, m := range msgs {
		w, ok := want[m.UID]
		if !ok {
			t.Fatalf("mailbox %d: unexpected UID %d", mailboxID, m.UID)
		}
		got, err := s.Blob(ctx, m.BlobKey)
		if err != nil {
			t.Fatalf("mailbox %d UID %d: %v", mailboxID, m.UID, err)
		}
		if !bytes.Equal(got, w) || m.Size != int64(len(w)) {
			t.Fatalf("mailbox %d UID %d: %d bytes served (size %d), not the %d appended", mailboxID, m.UID, len(got), m.Size, len(w))
		}
	}
}

func expungeUIDs(t testing.TB, s *store.Store, mailboxID int64, uids []uint32) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.StoreFlags(ctx, mailboxID, uids, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Expunge(ctx, mailboxID, uids)
	if err != nil || len(gone) != len(uids) {
		t.Fatalf("expunged %d of %d: %v", len(gone), len(uids), err)
	}
}

func mustGone(t testing.TB, s *store.Store, key string) {
	t.Helper()
	if b, err := s.Blob(context.Background(), key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob %s: %d bytes, %v; want ErrNotFound", key[:8], len(b), err)
	}
}

// A transaction that appends and then rolls back leaves no blob; the store
// goes on appending and serving exactly, also after reopening, and the
// bytes the rollback left behind are given back by Compact once their
// pack is old.
func TestPackRollback(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openAt(t, path, 1<<20)
	_, inbox := inboxOf(t, s, "a@example.test")
	want := map[uint32][]byte{}
	first := body(1, 700)
	m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: first})
	if err != nil {
		t.Fatal(err)
	}
	want[m.UID] = first

	// A transaction with three big bodies, one of them staged, rolled back.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rolled []string
	for i := uint64(0); i < 3; i++ {
		nm := &store.NewMessage{Body: body(100+i, 20000)}
		if i == 2 {
			sb, err := s.Stage(nm.Body)
			if err != nil {
				t.Fatal(err)
			}
			nm = &store.NewMessage{Staged: sb}
		}
		m, err := tx.Append(inbox, nm)
		if err != nil {
			t.Fatal(err)
		}
		rolled = append(rolled, m.BlobKey)
	}
	tx.Rollback()
	for _, k := range rolled {
		mustGone(t, s, k)
	}
	checkMailbox(t, s, inbox, want)

	// Later appends, one of them with the bytes of a rolled back message,
	// are served exactly.
	for i, b := range [][]byte{body(2, 300), body(100, 20000), {}} {
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatalf("append %d after rollback: %v", i, err)
		}
		want[m.UID] = b
	}
	checkMailbox(t, s, inbox, want)

	s.Close()
	s = openAt(t, path, 1<<20)
	checkMailbox(t, s, inbox, want)
	after := body(4, 900)
	m, err = s.AppendMessage(ctx, inbox, &store.NewMessage{Body: after})
	if err != nil {
		t.Fatal(err)
	}
	want[m.UID] = after
	checkMailbox(t, s, inbox, want)

	// The first pack is over half dead (two rolled back bodies of 20000
	// bytes): once old, Compact moves its live messages and deletes it.
	before := packFiles(t, path)
	store.AgePacks(t, path)
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := packFiles(t, path)
	if _, ok := now["00000001.pack"]; ok || res.PacksRemoved != 1 || res.BlobsMoved != 4 || res.BytesFreed != before["00000001.pack"] {
		t.Fatalf("Compact %+v; packs before %v, after %v", res, before, now)
	}
	live := int64(len(first) + 300 + 20000)
	if total(now) != total(before)-res.BytesFreed+live {
		t.Fatalf("packs hold %d bytes after Compact, want %d - %d + %d live", total(now), total(before), res.BytesFreed, live)
	}
	checkMailbox(t, s, inbox, want)
	s.Close()
	s = openAt(t, path, 1<<20)
	checkMailbox(t, s, inbox, want)
}

// Bytes after the last committed blob of a pack (a crash in the middle of
// a transaction, a staged blob never committed) are harmless: after
// reopening every message is served exactly, new appends work, and
// Compact gives the space back once the pack is old.
func TestPackCrashTail(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openAt(t, path, 1<<20)
	_, inbox := inboxOf(t, s, "a@example.test")
	want := map[uint32][]byte{}
	var live int64
	for i := uint64(0); i < 10; i++ {
		b := body(i, 200+int(i)*37)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		want[m.UID] = b
		live += int64(len(b))
	}
	// A staged blob that is never committed, then the crash.
	if _, err := s.Stage(body(50, 3000)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files := packFiles(t, path)
	name := newestPack(files)
	if len(files) != 1 || files[name] != live+3000 {
		t.Fatalf("packs %v, want one of %d bytes", files, live+3000)
	}
	// The transaction being written when the process died: a copy of a
	// committed message's bytes, and garbage.
	f, err := os.OpenFile(filepath.Join(path+"-packs", name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := append(append([]byte{}, want[1]...), body(51, 9000)...)
	if _, err := f.Write(garbage); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = openAt(t, path, 1<<20)
	checkMailbox(t, s, inbox, want)
	for i := uint64(0); i < 5; i++ {
		b := body(60+i, 500)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		want[m.UID] = b
	}
	checkMailbox(t, s, inbox, want)
	// Reopening neither cut the tail (another Store could be writing it)
	// nor wrote after it: new messages went to a new pack.
	if got := packFiles(t, path)[name]; got != files[name]+int64(len(garbage)) {
		t.Fatalf("%s is %d bytes after reopening, want %d", name, got, files[name]+int64(len(garbage)))
	}

	before := packFiles(t, path)
	store.AgePacks(t, path)
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := packFiles(t, path)
	if _, ok := now[name]; ok || res.PacksRemoved != 1 || res.BlobsMoved != 10 || res.BytesFreed != before[name] {
		t.Fatalf("Compact %+v; packs before %v, after %v", res, before, now)
	}
	if total(now) != total(before)-res.BytesFreed+live {
		t.Fatalf("packs hold %d bytes after Compact, want %d", total(now), total(before)-res.BytesFreed+live)
	}
	checkMailbox(t, s, inbox, want)
	s.Close()
	s = openAt(t, path, 1<<20)
	checkMailbox(t, s, inbox, want)
}

// A pack shorter than the data committed in it (a disk or a restore that
// lost its end): the store opens, serves what is intact, refuses (rather
// than serves wrong bytes for) what is lost, and never writes over the gap.
func TestPackShorterThanCommitted(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openAt(t, path, 1<<20)
	_, inbox := inboxOf(t, s, "a@example.test")
	intact := map[string][]byte{} // by blob key
	var damaged string
	var inOldPack []string
	for i := uint64(0); i < 4; i++ {
		b := body(i, 1000)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			intact[m.BlobKey] = b
			inOldPack = append(inOldPack, m.BlobKey)
		} else {
			damaged = m.BlobKey
		}
	}
	pack, off, err := store.BlobPlace(s, damaged)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := filepath.Join(path+"-packs", "00000001.pack")
	if pack != 1 || off != 3000 {
		t.Fatalf("last blob at pack %d offset %d, want 1, 3000", pack, off)
	}
	// The last message loses its second half.
	if err := os.Truncate(name, off+500); err != nil {
		t.Fatal(err)
	}
	checkServed := func(when string) {
		t.Helper()
		for k, b := range intact {
			if got, err := s.Blob(ctx, k); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: intact message %s: %d bytes, %v", when, k[:8], len(got), err)
			}
		}
		if got, err := s.Blob(ctx, damaged); err == nil {
			t.Fatalf("%s: damaged message served (%d bytes), want an error", when, len(got))
		}
	}

	s = openAt(t, path, 1<<20)
	checkServed("after reopening")
	// New messages go to a new pack: none of their bytes lands in the gap,
	// where the damaged message would then be served with them.
	var inNewPack string
	for i := uint64(10); i < 13; i++ {
		b := body(i, 1000)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		if p, _, _ := store.BlobPlace(s, m.BlobKey); p == 1 {
			t.Fatal("a new message was written to the damaged pack")
		}
		intact[m.BlobKey], inNewPack = b, m.BlobKey
	}
	if st, err := os.Stat(name); err != nil || st.Size() != off+500 {
		t.Fatalf("damaged pack changed: %v, %v", st.Size(), err)
	}
	checkServed("after new appends")
	// Compact leaves the damaged pack (mostly live) alone.
	store.AgePacks(t, path)
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	checkServed("after Compact")

	// A pack gone altogether is an error too, not a crash.
	s.Close()
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, 1<<20)
	for _, k := range inOldPack {
		if _, err := s.Blob(ctx, k); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("blob of a missing pack: %v, want a read error", err)
		}
	}
	if got, err := s.Blob(ctx, inNewPack); err != nil || !bytes.Equal(got, intact[inNewPack]) {
		t.Fatalf("message in an intact pack: %d bytes, %v", len(got), err)
	}
}

// With a small PackSize the messages spread over many packs, none much
// over the size, and every byte written once: all read back exactly, also
// after reopening.
func TestPackRotation(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	const packSize = 4096
	s := openAt(t, path, packSize)
	_, inbox := inboxOf(t, s, "a@example.test")
	want := map[uint32][]byte{}
	var written int64
	largest := 0
	r := rand.New(rand.NewPCG(1, 2))
	seed := uint64(0)
	for batch := 0; batch < 10; batch++ {
		// Staged bodies, as the migration writes them, beside plain ones.
		var staged []*store.StagedBlob
		var stagedBodies [][]byte
		for i := 0; i < 4; i++ {
			seed++
			b := body(seed, 100+r.IntN(3000))
			sb, err := s.Stage(b)
			if err != nil {
				t.Fatal(err)
			}
			staged, stagedBodies = append(staged, sb), append(stagedBodies, b)
			written += int64(len(b))
			largest = max(largest, len(b))
		}
		if err := s.SyncStaged(staged...); err != nil {
			t.Fatal(err)
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ {
			var nm *store.NewMessage
			var b []byte
			if i < len(staged) {
				nm, b = &store.NewMessage{Staged: staged[i]}, stagedBodies[i]
			} else {
				seed++
				b = body(seed, 100+r.IntN(3000))
				if batch == 5 && i == 7 {
					b = body(seed, 3*packSize) // larger than a pack
				}
				nm = &store.NewMessage{Body: b}
				written += int64(len(b))
				largest = max(largest, len(b))
			}
			m, err := tx.Append(inbox, nm)
			if err != nil {
				t.Fatal(err)
			}
			want[m.UID] = b
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	checkMailbox(t, s, inbox, want)
	files := packFiles(t, path)
	if len(files) < 10 {
		t.Fatalf("%d packs for %d bytes with PackSize %d", len(files), written, packSize)
	}
	if total(files) != written {
		t.Fatalf("packs hold %d bytes, %d were written", total(files), written)
	}
	for name, size := range files {
		if size >= packSize+int64(largest) {
			t.Fatalf("%s is %d bytes: the next pack should have started at %d", name, size, packSize)
		}
	}
	s.Close()
	s = openAt(t, path, packSize)
	checkMailbox(t, s, inbox, want)
}

// Compact gives back the space of deleted messages: packs with nothing
// live are deleted, mostly dead ones have their live messages copied on;
// every message left, also one shared by two mailboxes or two accounts, is
// served exactly, before and after reopening, and a second Compact finds
// nothing to do.
func TestPackCompact(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	const packSize = 4096
	s := openAt(t, path, packSize)
	a, inbox := inboxOf(t, s, "a@example.test")
	_, binbox := inboxOf(t, s, "b@example.test")
	arch, err := s.CreateMailbox(ctx, a.ID, "Archive", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantA, wantB := map[uint32][]byte{}, map[uint32][]byte{}
	for i := uint64(0); i < 120; i++ {
		b := body(i, 700+int(i%7)*50)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		wantA[m.UID] = b
		if i%4 == 0 { // b's mail interleaved with a's in the packs
			bb := body(1000+i, 800)
			if i == 100 {
				bb = b // the same bytes in both accounts: one blob
			}
			m, err := s.AppendMessage(ctx, binbox, &store.NewMessage{Body: bb})
			if err != nil {
				t.Fatal(err)
			}
			wantB[m.UID] = bb
		}
	}
	// UIDs 1-10 are copied to Archive (sharing their bytes), then 1-100 are
	// deleted from INBOX, and b's account goes altogether.
	pairs, err := s.Copy(ctx, inbox, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, arch.ID)
	if err != nil || len(pairs) != 10 {
		t.Fatalf("copy: %v, %v", pairs, err)
	}
	wantArch := map[uint32][]byte{}
	for _, p := range pairs {
		wantArch[p.Dst] = wantA[p.Src]
	}
	var del []uint32
	var gone []string
	for uid := uint32(1); uid <= 100; uid++ {
		del = append(del, uid)
		if uid > 10 {
			gone = append(gone, keyOf(wantA[uid]))
		}
		delete(wantA, uid)
	}
	expungeUIDs(t, s, inbox, del)
	for _, b := range wantB {
		if k := keyOf(b); k != keyOf(wantA[101]) {
			gone = append(gone, k)
		}
	}
	if err := s.DeleteAccount(ctx, "b@example.test"); err != nil {
		t.Fatal(err)
	}
	checkMailbox(t, s, inbox, wantA)
	checkMailbox(t, s, arch.ID, wantArch)

	before := packFiles(t, path)
	store.AgePacks(t, path)
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := packFiles(t, path)
	var removed int64
	var nRemoved int
	for name, size := range before {
		if _, ok := now[name]; !ok {
			removed += size
			nRemoved++
		}
	}
	t.Logf("%d packs (%d bytes) before, %d (%d bytes) after: %+v", len(before), total(before), len(now), total(now), res)
	if res.PacksRemoved < len(before)/2 || res.BlobsMoved == 0 {
		t.Fatalf("Compact %+v of %d packs, most of them dead", res, len(before))
	}
	if res.BytesFreed != removed || res.PacksRemoved != nRemoved {
		t.Fatalf("Compact says %d packs, %d bytes freed; %d pack files, %d bytes are gone", res.PacksRemoved, res.BytesFreed, nRemoved, removed)
	}
	var live int64
	for _, b := range wantA {
		live += int64(len(b))
	}
	for _, b := range wantArch {
		live += int64(len(b))
	}
	if total(now) >= total(before)/2 || total(now) < live {
		t.Fatalf("packs hold %d bytes after Compact (%d before, %d live)", total(now), total(before), live)
	}
	checkMailbox(t, s, inbox, wantA)
	checkMailbox(t, s, arch.ID, wantArch)
	for _, k := range gone {
		mustGone(t, s, k)
	}

	store.AgePacks(t, path)
	if res, err := s.Compact(ctx); err != nil || res != (store.CompactResult{}) {
		t.Fatalf("second Compact: %+v, %v", res, err)
	}
	if again := packFiles(t, path); total(again) != total(now) {
		t.Fatalf("second Compact changed the packs: %v, then %v", now, again)
	}

	s.Close()
	s = openAt(t, path, packSize)
	checkMailbox(t, s, inbox, wantA)
	checkMailbox(t, s, arch.ID, wantArch)
	// Everything deleted: all the space comes back but for the newest
	// pack, which keeps the highest number taken.
	if err := s.DeleteAccount(ctx, "a@example.test"); err != nil {
		t.Fatal(err)
	}
	newest := newestPack(packFiles(t, path))
	store.AgePacks(t, path)
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if left := packFiles(t, path); len(left) != 1 || newestPack(left) != newest {
		t.Fatalf("packs left after deleting everything: %v", left)
	}
}

// A staged blob is safe from Compact until it is appended, even when its
// pack was left for a new one meanwhile and holds nothing else live; one
// never appended is given back once its pack is old.
func TestPackStagedAndCompact(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	const packSize = 4096
	s := openAt(t, path, packSize)
	_, inbox := inboxOf(t, s, "a@example.test")
	wanted := body(1, 600)
	sb, err := s.Stage(wanted)
	if err != nil {
		t.Fatal(err)
	}
	// A staged body that is never appended (a message the migration
	// skipped) fills the pack; the next append starts a new one.
	if _, err := s.Stage(body(2, 2*packSize)); err != nil {
		t.Fatal(err)
	}
	other := body(3, 500)
	if _, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: other}); err != nil {
		t.Fatal(err)
	}
	files := packFiles(t, path)
	if len(files) != 2 || files["00000001.pack"] != int64(len(wanted))+2*packSize {
		t.Fatalf("packs %v", files)
	}
	// Compact runs (hourly) before the staged message is appended.
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncStaged(sb); err != nil {
		t.Fatal(err)
	}
	m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Staged: sb})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Blob(ctx, m.BlobKey); err != nil || !bytes.Equal(got, wanted) {
		t.Fatalf("staged message appended after a Compact: %d bytes, %v", len(got), err)
	}

	// Once old, the pack of the abandoned staged body is mostly dead: its
	// one live message moves and the space comes back.
	before := packFiles(t, path)
	store.AgePacks(t, path)
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := packFiles(t, path)
	if _, ok := now["00000001.pack"]; ok || res.PacksRemoved != 1 || res.BlobsMoved != 1 || res.BytesFreed != before["00000001.pack"] {
		t.Fatalf("Compact %+v; packs before %v, after %v", res, before, now)
	}
	if total(now) != total(before)-res.BytesFreed+int64(len(wanted)) {
		t.Fatalf("packs hold %d bytes after Compact, want %d", total(now), total(before)-res.BytesFreed+int64(len(wanted)))
	}
	checkMailbox(t, s, inbox, map[uint32][]byte{1: other, 2: wanted})
}

// Two Stores on one database (serve, and the CLI beside it): when one
// compacts away a pack the other has read from, a later pack never takes
// its number, so the other never serves the deleted pack's bytes for it.
func TestPackNumbersNotReused(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s0 := openAt(t, path, 1<<20)
	_, inbox := inboxOf(t, s0, "a@example.test")
	oldBody := body(1, 5000)
	if _, err := s0.AppendMessage(ctx, inbox, &store.NewMessage{Body: oldBody}); err != nil {
		t.Fatal(err)
	}
	s0.Close()

	reader := openAt(t, path, 1<<20)
	if got, err := reader.Blob(ctx, keyOf(oldBody)); err != nil || !bytes.Equal(got, oldBody) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	writer := openAt(t, path, 1<<20)
	expungeUIDs(t, writer, inbox, []uint32{1})
	store.AgePacks(t, path)
	if _, err := writer.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	newBody := body(2, 4000)
	m, err := writer.AppendMessage(ctx, inbox, &store.NewMessage{Body: newBody})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*store.Store{"writer": writer, "other store": reader} {
		if got, err := s.Blob(ctx, m.BlobKey); err != nil || !bytes.Equal(got, newBody) {
			t.Fatalf("%s serves %d bytes (%v) for the new message, not the %d appended", name, len(got), err, len(newBody))
		}
	}
	// The dead pack goes once a newer one exists.
	store.AgePacks(t, path)
	if res, err := writer.Compact(ctx); err != nil {
		t.Fatal(err)
	} else if _, ok := packFiles(t, path)["00000001.pack"]; ok {
		t.Fatalf("dead pack 1 kept: %+v", res)
	}
	// The other store's handle on the deleted pack (and so its disk space)
	// goes at its next Compact.
	if !slices.Contains(store.ReadHandles(reader), 1) {
		t.Fatalf("reader holds no handle on pack 1 (%v): the test reads nothing", store.ReadHandles(reader))
	}
	if _, err := reader.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if h := store.ReadHandles(reader); slices.Contains(h, 1) {
		t.Fatalf("reader still holds deleted pack 1 open: %v", h)
	}
	if got, err := reader.Blob(ctx, m.BlobKey); err != nil || !bytes.Equal(got, newBody) {
		t.Fatalf("after dropping handles: %d bytes, %v", len(got), err)
	}
}

// Stage + Append: the same bytes staged twice, or appended twice, make one
// blob whose reference count follows every message naming it.
func TestPackStageDedup(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	var summarized atomic.Int32
	s, err := store.OpenTest(t, path, &store.Options{Summarize: func(raw []byte) ([]byte, []byte) {
		summarized.Add(1)
		return []byte("env:" + string(raw[:min(8, len(raw))])), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, inbox := inboxOf(t, s, "a@example.test")
	if err := s.SyncStaged(); err != nil {
		t.Fatalf("SyncStaged(): %v", err)
	}
	if err := s.SyncStaged(nil, nil); err != nil {
		t.Fatalf("SyncStaged(nil, nil): %v", err)
	}
	x := body(1, 3000)
	sb1, err := s.Stage(x)
	if err != nil {
		t.Fatal(err)
	}
	sb2, err := s.Stage(x)
	if err != nil {
		t.Fatal(err)
	}
	if sb1.Key != keyOf(x) || sb2.Key != sb1.Key || sb1.Size != int64(len(x)) {
		t.Fatalf("staged keys %s %s, size %d", sb1.Key, sb2.Key, sb1.Size)
	}
	if err := s.SyncStaged(nil, sb2, nil, sb1); err != nil {
		t.Fatal(err)
	}
	// A transaction naming a staged blob rolls back: the staged blob can
	// still be appended later.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Append(inbox, &store.NewMessage{Staged: sb1}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	mustGone(t, s, sb1.Key)

	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*store.Message
	for _, nm := range []*store.NewMessage{{Staged: sb1}, {Staged: sb2}, {Body: x}} {
		m, err := tx.Append(inbox, nm)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	m4, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: x})
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, m4)
	for _, m := range msgs {
		if m.BlobKey != sb1.Key || m.Size != int64(len(x)) {
			t.Fatalf("message UID %d: key %s size %d", m.UID, m.BlobKey, m.Size)
		}
		full, err := s.Message(ctx, inbox, m.UID)
		if err != nil || string(full.Envelope) != "env:"+string(x[:8]) {
			t.Fatalf("UID %d envelope %q, %v", m.UID, full.Envelope, err)
		}
	}
	// The bytes are summarized once per staging and once per plain append.
	if n := summarized.Load(); n != 2+2 {
		t.Fatalf("Summarize called %d times, want 4", n)
	}
	if got, err := s.Blob(ctx, sb1.Key); err != nil || !bytes.Equal(got, x) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	// Written once by the plain appends (deduplicated in the database),
	// twice by Stage (dead space for Compact).
	if got := total(packFiles(t, path)); got != 2*int64(len(x)) {
		t.Fatalf("packs hold %d bytes, want the 2 staged copies of %d", got, len(x))
	}
	// Each message holds its reference: the bytes stay until the last goes.
	for i, m := range msgs {
		expungeUIDs(t, s, inbox, []uint32{m.UID})
		got, err := s.Blob(ctx, sb1.Key)
		if i < len(msgs)-1 && (err != nil || !bytes.Equal(got, x)) {
			t.Fatalf("after expunging %d of %d messages: %d bytes, %v", i+1, len(msgs), len(got), err)
		}
	}
	mustGone(t, s, sb1.Key)

	// An empty message is a blob like any other.
	sbe, err := s.Stage(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, nm := range []*store.NewMessage{{Staged: sbe}, {Body: []byte{}}} {
		m, err := s.AppendMessage(ctx, inbox, nm)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Blob(ctx, m.BlobKey); err != nil || got == nil || len(got) != 0 || m.Size != 0 {
			t.Fatalf("empty message: %q (nil %v), size %d, %v", got, got == nil, m.Size, err)
		}
	}
}

// Readers call Blob while Compact moves blobs out of dead packs and
// deletes them, and while other goroutines append (plainly and staged) and
// expunge: every read is the exact bytes, or ErrNotFound for a message
// that was deleted. A second Store (another process) reads meanwhile too.
// Run with -race.
func TestPackConcurrentReadCompactAppend(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	const packSize = 8192
	s := openAt(t, path, packSize)
	a, inbox := inboxOf(t, s, "a@example.test")
	doomedMB, err := s.CreateMailbox(ctx, a.ID, "Doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Survivors are never deleted; dead ones are expunged before, doomed
	// ones during the run.
	var survivors, dead, doomed [][]byte
	var deadUIDs []uint32
	for i := uint64(0); i < 300; i++ {
		b := body(i, 200+int(i*37%1800))
		mb := inbox
		if i%10 == 3 {
			mb = doomedMB.ID
		}
		m, err := s.AppendMessage(ctx, mb, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case mb == doomedMB.ID:
			doomed = append(doomed, b)
		case i%5 == 0:
			survivors = append(survivors, b)
		default:
			dead, deadUIDs = append(dead, b), append(deadUIDs, m.UID)
		}
	}
	expungeUIDs(t, s, inbox, deadUIDs)
	store.AgePacks(t, path) // only the packs written so far
	other := openAt(t, path, packSize)

	var (
		mu       sync.Mutex
		appended [][]byte
		fail     = make(chan string, 100)
		done     = make(chan struct{})
		wg       sync.WaitGroup
		workers  sync.WaitGroup
		res      store.CompactResult
	)
	report := func(format string, args ...any) {
		select {
		case fail <- fmt.Sprintf(format, args...):
		default:
		}
	}
	check := func(rd *store.Store, b []byte, mayBeGone bool) {
		got, err := rd.Blob(ctx, keyOf(b))
		switch {
		case err == nil && !bytes.Equal(got, b):
			report("blob %s: %d wrong bytes served", keyOf(b)[:8], len(got))
		case err != nil && !(mayBeGone && errors.Is(err, store.ErrNotFound)):
			report("blob %s: %v", keyOf(b)[:8], err)
		}
	}
	for r := 0; r < 6; r++ {
		rd := s
		if r%3 == 2 {
			rd = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				for i := r; i < len(survivors); i += 3 {
					check(rd, survivors[i], false)
				}
				for i := r; i < len(doomed); i += 5 {
					check(rd, doomed[i], true)
				}
				for i := r; i < len(dead); i += 17 {
					check(rd, dead[i], true)
				}
				mu.Lock()
				mine := slices.Clone(appended)
				mu.Unlock()
				for _, b := range mine {
					check(rd, b, false)
				}
				select {
				case <-done:
					if round > 0 {
						return
					}
				default:
				}
			}
		}()
	}
	for w := 0; w < 2; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; i < 60; i++ {
				b := body(uint64(10000+w*1000+i), 300+i*29)
				nm := &store.NewMessage{Body: b}
				if i%2 == 1 {
					sb, err := s.Stage(b)
					if err != nil {
						report("stage: %v", err)
						return
					}
					nm = &store.NewMessage{Staged: sb}
				}
				if _, err := s.AppendMessage(ctx, inbox, nm); err != nil {
					report("append: %v", err)
					return
				}
				mu.Lock()
				appended = append(appended, b)
				mu.Unlock()
			}
		}()
	}
	workers.Add(2)
	go func() {
		defer workers.Done()
		for i := 0; i < len(doomed); i += 3 {
			uid := uint32(i + 1)
			if _, err := s.StoreFlags(ctx, doomedMB.ID, []uint32{uid, uid + 1, uid + 2}, store.FlagsAdd, []string{`\Deleted`}); err != nil {
				report("flag: %v", err)
				return
			}
			if _, err := s.Expunge(ctx, doomedMB.ID, nil); err != nil {
				report("expunge: %v", err)
				return
			}
		}
	}()
	go func() {
		defer workers.Done()
		var err error
		if res, err = s.Compact(ctx); err != nil {
			report("compact: %v", err)
		}
	}()
	// drain reports what the goroutines (or the checks since) found.
	drain := func() {
		close(fail)
		for msg := range fail {
			t.Error(msg)
		}
		fail = make(chan string, 100)
	}
	workers.Wait()
	close(done)
	wg.Wait()
	drain()
	if t.Failed() {
		return
	}
	if res.PacksRemoved == 0 || res.BlobsMoved == 0 {
		t.Fatalf("Compact %+v: nothing happened while the others ran", res)
	}
	now := packFiles(t, path)
	// No read handle is left on a deleted pack (its space would not come
	// back until the Store closes).
	for _, id := range store.ReadHandles(s) {
		if _, ok := now[fmt.Sprintf("%08d.pack", id)]; !ok {
			t.Errorf("read handle left open on deleted pack %d", id)
		}
	}
	for _, rd := range []*store.Store{s, other} {
		for _, b := range survivors {
			check(rd, b, false)
		}
		for _, b := range appended {
			check(rd, b, false)
		}
		for _, b := range append(slices.Clone(dead), doomed...) {
			mustGone(t, rd, keyOf(b))
		}
	}
	drain()
	s.Close()
	other.Close()
	s = openAt(t, path, packSize)
	for _, b := range append(slices.Clone(survivors), appended...) {
		check(s, b, false)
	}
	drain()
}

// Compact checks the bytes it copies: a live blob that no longer matches
// its key (a disk that flipped a bit) is not copied on as if it were good,
// and its pack is left for the administrator.
func TestPackCompactRefusesDamagedBlob(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openAt(t, path, 4096)
	_, inbox := inboxOf(t, s, "a@example.test")
	var keep []byte
	var del []uint32
	for i := uint64(0); i < 8; i++ {
		b := body(i, 1000)
		m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: b})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			keep = b
		} else {
			del = append(del, m.UID)
		}
	}
	expungeUIDs(t, s, inbox, del)
	pack, off, err := store.BlobPlace(s, keyOf(keep))
	if err != nil || pack != 1 {
		t.Fatalf("kept blob in pack %d, %v", pack, err)
	}
	name := filepath.Join(path+"-packs", "00000001.pack")
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^keep[500]}, off+500); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := packFiles(t, path)
	store.AgePacks(t, path)
	res, err := s.Compact(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Compact of a pack with a damaged blob: %+v, %v", res, err)
	}
	if res.PacksRemoved != 0 || res.BlobsMoved != 0 {
		t.Fatalf("Compact %+v", res)
	}
	if p, o, err := store.BlobPlace(s, keyOf(keep)); err != nil || p != pack || o != off {
		t.Fatalf("damaged blob moved to pack %d offset %d (%v)", p, o, err)
	}
	if now := packFiles(t, path); now["00000001.pack"] != before["00000001.pack"] {
		t.Fatalf("damaged pack changed: %v, then %v", before, now)
	}
}
