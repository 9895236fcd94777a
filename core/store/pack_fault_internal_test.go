package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Tests of what a failed write or fsync of a pack does to the messages
// whose bytes are in it. The disk is simulated by faultyDisk through the
// packs.wrap seam.

var (
	errInjectedWrite = errors.New("injected write error")
	errInjectedSync  = errors.New("injected fsync error")
)

// faultyDisk hands out pack files that fail on demand, as a disk whose
// write-back failed does on Linux: the error is reported once, the dirty
// pages are dropped (marked clean, their bytes gone) and the next fsync of
// the same file succeeds without them (fsyncgate). A dropped page is
// modelled by cutting the file back to its size at its last good fsync.
type faultyDisk struct {
	mu sync.Mutex
	// failWriteIn and failSyncIn make the n-th next write (or fsync), over
	// all packs, fail; 0 means none.
	failWriteIn, failSyncIn int
	files                   []*faultyPack
}

type faultyPack struct {
	*os.File
	d       *faultyDisk
	written int64 // end of the bytes written
	pending int   // writes since the last good fsync
	durable int64 // end of the bytes on disk: written before the last good fsync
	failed  bool  // a write or fsync failed
	// writes and fsyncs asked for after the failure
	writesAfter, syncsAfter int
}

func (d *faultyDisk) wrap(f *os.File) packFile {
	d.mu.Lock()
	defer d.mu.Unlock()
	fp := &faultyPack{File: f, d: d}
	d.files = append(d.files, fp)
	return fp
}

// fail marks fp failed and drops what was not on disk. The caller holds d.mu.
func (fp *faultyPack) fail() {
	fp.failed = true
	if err := fp.File.Truncate(fp.durable); err != nil {
		panic(err)
	}
	fp.written, fp.pending = fp.durable, 0
}

func (fp *faultyPack) WriteAt(b []byte, off int64) (int, error) {
	d := fp.d
	d.mu.Lock()
	if fp.failed {
		fp.writesAfter++
	}
	if d.failWriteIn > 0 {
		if d.failWriteIn--; d.failWriteIn == 0 {
			n, _ := fp.File.WriteAt(b[:len(b)/2], off) // a short write
			fp.fail()
			d.mu.Unlock()
			return n, errInjectedWrite
		}
	}
	d.mu.Unlock()
	n, err := fp.File.WriteAt(b, off)
	d.mu.Lock()
	fp.written = max(fp.written, off+int64(n))
	fp.pending++
	d.mu.Unlock()
	return n, err
}

func (fp *faultyPack) Sync() error {
	d := fp.d
	d.mu.Lock()
	if fp.failed {
		fp.syncsAfter++
	}
	if d.failSyncIn > 1 {
		d.failSyncIn--
	} else if d.failSyncIn == 1 {
		d.failSyncIn = 0
		fp.fail()
		d.mu.Unlock()
		return errInjectedSync
	}
	end, pending := fp.written, fp.pending
	d.mu.Unlock()
	if err := fp.File.Sync(); err != nil {
		return err
	}
	d.mu.Lock()
	fp.durable = max(fp.durable, end)
	fp.pending -= pending
	d.mu.Unlock()
	return nil
}

// failAfter makes the n-th next write (or fsync) fail.
func (d *faultyDisk) failAfter(writes, syncs int) {
	d.mu.Lock()
	d.failWriteIn, d.failSyncIn = writes, syncs
	d.mu.Unlock()
}

// check fails t if a failed pack was written or synced after its failure,
// and returns the number of failed packs.
func (d *faultyDisk) check(t testing.TB) (failed int) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, fp := range d.files {
		if fp.failed {
			failed++
			if fp.syncsAfter > 0 || fp.writesAfter > 0 {
				t.Errorf("%s: %d writes and %d fsyncs after a failed one; the pack must be abandoned", filepath.Base(fp.Name()), fp.writesAfter, fp.syncsAfter)
			}
		}
	}
	return failed
}

// faultyStore opens a store whose packs are on a faultyDisk, with one
// account, and returns its INBOX.
func faultyStore(t testing.TB, packSize int64) (*Store, *faultyDisk, int64, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := testOpen(t, path, &Options{PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := &faultyDisk{}
	s.packs.wrap = d.wrap
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, "a@example.test", "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return s, d, inbox.ID, path
}

// fbody makes n bytes unique to seed.
func fbody(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0xfa11))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, fmt.Sprintf("%d:", seed))
	return b
}

// fkey is b's key in a store made by the tests (a new store: BLAKE3's).
func fkey(b []byte) string { return b3Key(b) }

// mustNotDurable fails t unless err is ErrNotDurable.
func mustNotDurable(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotDurable) {
		t.Fatalf("%s: %v, want ErrNotDurable", what, err)
	}
}

// mustServe fails t unless the blob of b is served exactly.
func mustServe(t testing.TB, s *Store, b []byte) {
	t.Helper()
	if got, err := s.Blob(context.Background(), fkey(b)); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob %s: %d bytes served (%v), not the %d stored", fkey(b)[:8], len(got), err, len(b))
	}
}

// mustNotStored fails t if a blob row names the bytes of b.
func mustNotStored(t testing.TB, s *Store, b []byte) {
	t.Helper()
	if _, err := s.Blob(context.Background(), fkey(b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob %s: %v, want ErrNotFound (nothing may name lost bytes)", fkey(b)[:8], err)
	}
}

func packOf(t testing.TB, s *Store, b []byte) int64 {
	t.Helper()
	pack, _, err := BlobPlace(s, fkey(b))
	if err != nil {
		t.Fatal(err)
	}
	return pack
}

// An fsync fails, and the next one of the same file would succeed: the
// blobs written before the failure but not yet synced are refused at
// every step a caller takes (SyncStaged, Commit of a transaction naming
// them, plain or staged), never acknowledged; what was synced before stays
// served; the pack gets no more writes, and the same bytes staged or
// appended again go to a new pack.
func TestPackFsyncFailureThenSuccess(t *testing.T) {
	ctx := context.Background()
	s, d, inbox, path := faultyStore(t, 1<<20)
	durable := fbody(1, 3000)
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: durable}); err != nil {
		t.Fatal(err)
	}
	a, b := fbody(2, 2000), fbody(3, 2500)
	sa, err := s.Stage(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := s.Stage(b)
	if err != nil {
		t.Fatal(err)
	}
	d.failAfter(0, 1)
	mustNotDurable(t, "SyncStaged after a failed fsync", s.SyncStaged(sa))
	// The failure was reported once; a second fsync would succeed. The
	// staged blobs must still be refused.
	mustNotDurable(t, "SyncStaged again", s.SyncStaged(sa))
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Append(inbox, &NewMessage{Staged: sa}); err != nil {
		t.Fatal(err)
	}
	mustNotDurable(t, "commit of a lost staged blob", tx.Commit())
	_, err = s.AppendMessage(ctx, inbox, &NewMessage{Staged: sb})
	mustNotDurable(t, "AppendMessage of a lost staged blob", err)
	mustNotStored(t, s, a)
	mustNotStored(t, s, b)
	mustServe(t, s, durable)
	if msgs, err := s.Messages(ctx, inbox); err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages (%v), want only the one committed before the failure", len(msgs), err)
	}

	// The retries: a new Stage of the same bytes, and a plain append of
	// the other (deduplication must not find a row for the lost bytes).
	sa2, err := s.Stage(a)
	if err != nil {
		t.Fatal(err)
	}
	if sa2.pack == sa.pack {
		t.Fatalf("staged again into pack %d, which failed", sa2.pack)
	}
	if err := s.SyncStaged(sa2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Staged: sa2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: b}); err != nil {
		t.Fatal(err)
	}
	if p := packOf(t, s, b); p == sa.pack {
		t.Fatalf("retried message stored in failed pack %d", p)
	}
	for _, x := range [][]byte{durable, a, b} {
		mustServe(t, s, x)
	}
	if d.check(t) != 1 {
		t.Fatal("no pack failed: the test tests nothing")
	}
	s.Close()
	s, err = testOpen(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, x := range [][]byte{durable, a, b} {
		mustServe(t, s, x)
	}
}

// A failed write abandons the pack: the blob being written fails, those
// staged before it and not yet synced are refused, also in a transaction
// that names blobs of the new pack beside them, and later writes go to a
// new pack. A transaction whose Append failed on a write and that is
// committed all the same commits nothing of the lost bytes.
func TestPackWriteFailure(t *testing.T) {
	ctx := context.Background()
	s, d, inbox, _ := faultyStore(t, 1<<20)
	durable := fbody(1, 3000)
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: durable}); err != nil {
		t.Fatal(err)
	}
	a, b, c := fbody(2, 2000), fbody(3, 2500), fbody(4, 1500)
	sa, err := s.Stage(a)
	if err != nil {
		t.Fatal(err)
	}
	d.failAfter(1, 0)
	_, err = s.Stage(b)
	mustNotDurable(t, "Stage on a failing write", err)
	sc, err := s.Stage(c)
	if err != nil {
		t.Fatal(err)
	}
	if sc.pack == sa.pack {
		t.Fatalf("written on into pack %d after a failed write", sc.pack)
	}
	// One transaction names the lost blob and a good one in the new pack.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.AppendMany(inbox, []*NewMessage{{Staged: sa}, {Staged: sc}}); err != nil {
		t.Fatal(err)
	}
	mustNotDurable(t, "commit naming a lost blob and a new one", tx.Commit())
	mustNotStored(t, s, a)
	mustNotStored(t, s, c)
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Staged: sc}); err != nil {
		t.Fatalf("blob of the new pack: %v", err)
	}
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: a}); err != nil {
		t.Fatal(err)
	}
	if p := packOf(t, s, a); p == sa.pack {
		t.Fatalf("retried message stored in failed pack %d", p)
	}

	// The plain way: the second Append of a transaction fails on a write;
	// the caller commits anyway.
	e, f := fbody(5, 1800), fbody(6, 1900)
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Append(inbox, &NewMessage{Body: e}); err != nil {
		t.Fatal(err)
	}
	d.failAfter(1, 0)
	_, err = tx.Append(inbox, &NewMessage{Body: f})
	mustNotDurable(t, "Append on a failing write", err)
	mustNotDurable(t, "commit after a failed Append", tx.Commit())
	mustNotStored(t, s, e)
	mustNotStored(t, s, f)
	// The same for a queued message.
	qtx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qtx.Enqueue("x@example.test", []string{"y@example.test"}, e, ""); err != nil {
		t.Fatal(err)
	}
	if err := qtx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Append(inbox, &NewMessage{Body: f}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, x := range [][]byte{durable, a, c, e, f} {
		mustServe(t, s, x)
	}
	if n := d.check(t); n != 2 {
		t.Fatalf("%d packs failed, want 2", n)
	}
}

// A pack left because it is full is synced as it is left; if that fsync
// fails, the write that needed the new pack still succeeds there, and the
// blobs of the old pack that were not synced are refused.
func TestPackRotateSyncFailure(t *testing.T) {
	ctx := context.Background()
	const packSize = 4096
	s, d, inbox, _ := faultyStore(t, packSize)
	a, b := fbody(1, packSize+100), fbody(2, 700)
	sa, err := s.Stage(a)
	if err != nil {
		t.Fatal(err)
	}
	d.failAfter(0, 1)
	sb, err := s.Stage(b)
	if err != nil {
		t.Fatalf("Stage into a new pack after the old one failed its fsync: %v", err)
	}
	if sb.pack == sa.pack {
		t.Fatal("the full pack was not left")
	}
	_, err = s.AppendMessage(ctx, inbox, &NewMessage{Staged: sa})
	mustNotDurable(t, "append of a blob the failed fsync lost", err)
	mustNotStored(t, s, a)
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Staged: sb}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: a}); err != nil {
		t.Fatal(err)
	}
	mustServe(t, s, a)
	mustServe(t, s, b)
	if d.check(t) != 1 {
		t.Fatal("no pack failed: the test tests nothing")
	}
}

// Writers share fsyncs: several stage their messages, one plain
// transaction writes another, and they all sync at once; the fsync that
// covers them all fails, and the next would succeed. Every one of them is
// refused with ErrNotDurable (none is acknowledged on the strength of a
// later fsync), the pack is neither written nor synced again, and every
// retry, run concurrently, succeeds into a new pack. Run with -race.
func TestPackFsyncFailureConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s, d, inbox, _ := faultyStore(t, 1<<20)
	durable := fbody(1, 4000)
	if _, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: durable}); err != nil {
		t.Fatal(err)
	}
	const writers = 6
	bodies := make([][]byte, writers)
	staged := make([]*StagedBlob, writers)
	var wg sync.WaitGroup
	for w := range writers {
		bodies[w] = fbody(uint64(100+w), 500+97*w)
		wg.Go(func() {
			var err error
			if staged[w], err = s.Stage(bodies[w]); err != nil {
				t.Error(err)
			}
		})
	}
	plain := fbody(200, 3000)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Append(inbox, &NewMessage{Body: plain}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	d.failAfter(0, 1)
	errs := make([]error, writers+1)
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			errs[w] = s.SyncStaged(staged[w])
		})
	}
	wg.Go(func() {
		<-start
		errs[writers] = tx.Commit()
	})
	close(start)
	wg.Wait()
	for w, err := range errs {
		mustNotDurable(t, fmt.Sprintf("writer %d", w), err)
	}
	mustNotStored(t, s, plain)
	mustServe(t, s, durable)

	// The retries, concurrently, with a few more messages each.
	for w := range writers + 1 {
		wg.Go(func() {
			b := plain
			if w < writers {
				b = bodies[w]
			}
			for i := range 4 {
				if err := appendOne(ctx, s, inbox, b, w < writers); err != nil {
					t.Errorf("writer %d message %d: %v", w, i, err)
					return
				}
				b = fbody(uint64(1000*w+i), 300+50*i)
			}
		})
	}
	wg.Wait()
	if d.check(t) != 1 {
		t.Fatal("no pack failed: the test tests nothing")
	}
	if msgs, err := s.Messages(ctx, inbox); err != nil || len(msgs) != 1+4*(writers+1) {
		t.Fatalf("%d messages (%v), want %d", len(msgs), err, 1+4*(writers+1))
	}
	for w := range writers + 1 {
		b := plain
		if w < writers {
			b = bodies[w]
		}
		mustServe(t, s, b)
		if p := packOf(t, s, b); p == staged[0].pack {
			t.Fatalf("writer %d: retried message stored in failed pack %d", w, p)
		}
		for i := range 3 {
			mustServe(t, s, fbody(uint64(1000*w+i), 300+50*i))
		}
	}
}

// appendOne appends b in its own transaction, staged and synced first or
// plainly.
func appendOne(ctx context.Context, s *Store, mailbox int64, b []byte, staged bool) error {
	nm := &NewMessage{Body: b}
	if staged {
		sb, err := s.Stage(b)
		if err != nil {
			return err
		}
		if err := s.SyncStaged(sb); err != nil {
			return err
		}
		nm = &NewMessage{Staged: sb}
	}
	_, err := s.AppendMessage(ctx, mailbox, nm)
	return err
}
