package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// directPack counts the writes of a direct handle and fails them on
// demand: fail is returned by the failAt-th write (1-based; 0: never).
type directPack struct {
	*os.File
	mu     *sync.Mutex
	writes *int
	failAt int
	fail   error
}

func (d *directPack) WriteAt(b []byte, off int64) (int, error) {
	d.mu.Lock()
	*d.writes++
	n := *d.writes
	d.mu.Unlock()
	if n == d.failAt {
		if errors.Is(d.fail, syscall.EINVAL) {
			return 0, &os.PathError{Op: "write", Path: d.Name(), Err: d.fail}
		}
		w, _ := d.File.WriteAt(b[:len(b)/2], off) // a short write
		return w, &os.PathError{Op: "write", Path: d.Name(), Err: d.fail}
	}
	if off%directAlign != 0 || len(b)%directAlign != 0 {
		panic("an unaligned direct write") // the kernel would refuse it
	}
	return d.File.WriteAt(b, off)
}

// directPaths: the database path of each directStore.
var directPaths sync.Map

// directStore opens a store with one account whose packs are written
// directly, each direct handle wrapped by directPack; it skips where the
// temporary directory's file system has no direct writes.
func directStore(t *testing.T, packSize int64, failAt int, fail error) (*Store, int64, *int) {
	t.Helper()
	dir := t.TempDir()
	if f := openDirect(filepath.Join(dir, "probe")); f == nil {
		if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
			f.Close()
		}
		if f = openDirect(filepath.Join(dir, "probe")); f == nil {
			t.Skip("no direct writes (O_DIRECT) on this file system")
		}
		f.Close()
	} else {
		f.Close()
	}
	s, err := testOpen(t, filepath.Join(dir, "mail.db"), &Options{PackSize: packSize})
	directPaths.Store(s, filepath.Join(dir, "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var mu sync.Mutex
	writes := new(int)
	s.packs.wrapDirect = func(f *os.File) packFile {
		return &directPack{File: f, mu: &mu, writes: writes, failAt: failAt, fail: fail}
	}
	ctx := context.Background()
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
	return s, inbox.ID, writes
}

// directSizes are message sizes around the block and buffer edges.
var directSizes = []int{1, 4095, 4096, 4097, 8191, 3000, 17_000, 120_000, 540_000, directBufSize - 1, directBufSize, directBufSize + 1, 3 * directBufSize, 0, 12}

// stageBatch stages bodies like a copy's batch (Stage each, one
// SyncStaged, then the appends) and returns the first error.
func stageBatch(ctx context.Context, s *Store, mailbox int64, bodies [][]byte) error {
	var staged []*StagedBlob
	for _, b := range bodies {
		sb, err := s.Stage(b)
		if err != nil {
			return err
		}
		staged = append(staged, sb)
	}
	if err := s.SyncStaged(staged...); err != nil {
		return err
	}
	for _, sb := range staged {
		if _, err := s.AppendMessage(ctx, mailbox, &NewMessage{Staged: sb}); err != nil {
			return err
		}
	}
	return nil
}

// Bytes gathered for direct writes come back exactly, whatever their
// sizes and wherever the syncs and pack changes fall; the packs hold
// exactly the bytes appended (nothing pads them, nothing is written
// twice), and most bytes went out in direct writes (one per message
// before).
func TestPackDirectExactBytes(t *testing.T) {
	ctx := context.Background()
	s, inbox, writes := directStore(t, 4<<20, 0, nil)
	var all [][]byte
	var total int64
	seed := uint64(1)
	for round := range 6 {
		var batch [][]byte
		for i, n := range directSizes {
			if (i+round)%3 == 0 {
				continue
			}
			b := fbody(seed, n)
			seed++
			batch = append(batch, b)
			total += int64(n)
		}
		if err := stageBatch(ctx, s, inbox, batch); err != nil {
			t.Fatal(err)
		}
		// A single small append between batches (as serve's APPEND).
		b := fbody(seed, 700+round)
		seed++
		if err := appendOne(ctx, s, inbox, b, round%2 == 0); err != nil {
			t.Fatal(err)
		}
		total += int64(len(b))
		all = append(append(all, batch...), b)
	}
	for _, b := range all {
		mustServe(t, s, b)
	}
	if *writes == 0 || *writes > len(all)/2 {
		t.Fatalf("%d direct writes for %d messages (%d bytes): want some, far fewer than messages", *writes, len(all), total)
	}
	var size int64
	ents, _ := os.ReadDir(s.packs.dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) == packExt {
			fi, _ := e.Info()
			size += fi.Size()
		}
	}
	// Each distinct body once (the empty one takes no byte).
	if size != total {
		t.Fatalf("packs hold %d bytes, %d were appended", size, total)
	}
	// And from a fresh open (the bytes are in the files, not in memory).
	path, _ := directPaths.Load(s)
	s.Close()
	s2, err := testOpen(t, path.(string), &Options{PackSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, b := range all {
		mustServe(t, s2, b)
	}
}

// A direct write that fails abandons the pack, as a failed ordinary
// write does: what was gathered in it is refused, nothing more is written
// to it, and the next bytes go to a new pack and are served exactly.
func TestPackDirectWriteFailure(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected direct write error")
	s, inbox, writes := directStore(t, 64<<20, 3, injected)
	first := [][]byte{fbody(1, 300_000), fbody(2, 900_000)} // two direct writes: a full buffer, then at the sync
	if err := stageBatch(ctx, s, inbox, first); err != nil {
		t.Fatal(err)
	}
	failedPack := s.packs.wid
	lost := [][]byte{fbody(3, 600_000), fbody(4, 700_000)} // the second fills the buffer: the failing write
	err := stageBatch(ctx, s, inbox, lost)
	mustNotDurable(t, "batch with a failed direct write", err)
	for _, b := range lost {
		mustNotStored(t, s, b)
	}
	n := *writes
	after := [][]byte{fbody(5, 5000), fbody(6, 2<<20)}
	if err := stageBatch(ctx, s, inbox, after); err != nil {
		t.Fatal(err)
	}
	if s.packs.wid == failedPack {
		t.Fatalf("still writing pack %d after its direct write failed", failedPack)
	}
	for _, b := range append(first, after...) {
		mustServe(t, s, b)
	}
	if *writes <= n {
		t.Fatal("the new pack was not written directly")
	}
}

// A file system that refuses direct writes (EINVAL) is written through the
// ordinary handle from then on, every byte exactly, nothing lost.
func TestPackDirectRefused(t *testing.T) {
	ctx := context.Background()
	s, inbox, _ := directStore(t, 64<<20, 1, syscall.EINVAL)
	var all [][]byte
	for i, n := range directSizes {
		all = append(all, fbody(uint64(100+i), n))
	}
	if err := stageBatch(ctx, s, inbox, all); err != nil {
		t.Fatal(err)
	}
	if s.packs.dw != nil || s.packs.broken != nil {
		t.Fatalf("after a refused direct write: direct handle %v, broken %v", s.packs.dw, s.packs.broken)
	}
	more := fbody(200, 2<<20)
	if err := appendOne(ctx, s, inbox, more, true); err != nil {
		t.Fatal(err)
	}
	for _, b := range append(all, more) {
		mustServe(t, s, b)
	}
}

// slowPack is a direct handle whose writes wait until release is closed
// (a disk that takes its time), each saying first that it began.
type slowPack struct {
	*os.File
	began   chan<- struct{}
	release <-chan struct{}
}

func (s *slowPack) WriteAt(b []byte, off int64) (int, error) {
	s.began <- struct{}{}
	<-s.release
	return s.File.WriteAt(b, off)
}

// A direct write waiting for the disk does not stop the appends behind
// it (on one CPU such a wait held the process's only P, and the copy's
// network reader waited with it): a Stage that fills the buffer returns
// while its blocks are still being written, and so does the next one
// into the second buffer. The sync waits for the write, and every byte
// is served exactly.
func TestPackDirectWriteInBackground(t *testing.T) {
	s, inbox, _ := directStore(t, 64<<20, 0, nil)
	began, release := make(chan struct{}, 64), make(chan struct{})
	s.packs.wrapDirect = func(f *os.File) packFile { return &slowPack{File: f, began: began, release: release} }
	bodies := [][]byte{fbody(1, directBufSize+directBufSize/2), fbody(2, directBufSize/4)}
	staged := stageAll(s, bodies)
	select {
	case <-began:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("no direct write began")
	}
	r := stagedWithin(t, staged, release, "Stage waited for the direct write in flight")
	if r.err != nil {
		close(release)
		t.Fatal(r.err)
	}
	close(release)
	appendServed(t, s, inbox, r.b, bodies)
}

// gatePack is a direct handle whose writes wait until release is closed,
// each saying first that it began; the first one fails with fail, if set.
type gatePack struct {
	*os.File
	began   chan<- struct{}
	release <-chan struct{}
	fail    error
	writes  *atomic.Int32
}

func (g *gatePack) WriteAt(b []byte, off int64) (int, error) {
	n := g.writes.Add(1)
	g.began <- struct{}{}
	<-g.release
	if n == 1 && g.fail != nil {
		return 0, &os.PathError{Op: "write", Path: g.Name(), Err: g.fail}
	}
	return g.File.WriteAt(b, off)
}

// gatedStore is a directStore whose direct handles are gatePacks (fail
// given to each): their writes say on began that they began and wait
// for release to be closed.
func gatedStore(t *testing.T, fail error) (s *Store, inbox int64, began chan struct{}, release chan struct{}, writes *atomic.Int32) {
	s, inbox, _ = directStore(t, 64<<20, 0, nil)
	began, release, writes = make(chan struct{}, 64), make(chan struct{}), new(atomic.Int32)
	s.packs.wrapDirect = func(f *os.File) packFile {
		return &gatePack{File: f, began: began, release: release, fail: fail, writes: writes}
	}
	return s, inbox, began, release, writes
}

// appendServed syncs and appends the staged blobs, then checks that every
// body in bodies is served exactly.
func appendServed(t *testing.T, s *Store, inbox int64, blobs []*StagedBlob, bodies [][]byte) {
	t.Helper()
	if err := s.SyncStaged(blobs...); err != nil {
		t.Fatal(err)
	}
	for _, sb := range blobs {
		if _, err := s.AppendMessage(context.Background(), inbox, &NewMessage{Staged: sb}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bodies {
		mustServe(t, s, b)
	}
}

// stageAll stages bodies in a goroutine of its own and gives back the
// blobs (or the first error) on the channel returned.
func stageAll(s *Store, bodies [][]byte) <-chan stageResult {
	done := make(chan stageResult, 1)
	go func() {
		var r stageResult
		for _, b := range bodies {
			sb, err := s.Stage(b)
			if err != nil {
				r.err = err
				break
			}
			r.b = append(r.b, sb)
		}
		done <- r
	}()
	return done
}

// stagedWithin waits for stageAll's result; after 30 s it fails with
// what, once it closed release (which lets the Stage and the store's
// Close end).
func stagedWithin(t *testing.T, staged <-chan stageResult, release chan struct{}, what string) stageResult {
	t.Helper()
	select {
	case r := <-staged:
		return r
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal(what)
	}
	return stageResult{}
}

type stageResult struct {
	b   []*StagedBlob
	err error
}

// Several full buffers' direct writes wait in a queue behind a slow one:
// appends filling directQueue buffers all return while the first write
// is still waiting for the disk (with one write in flight, the append
// filling the second buffer waited for it). The queued writes go out in
// order, one at a time, and every byte is served exactly.
func TestPackDirectWritesQueued(t *testing.T) {
	s, inbox, began, release, writes := gatedStore(t, nil)
	var bodies [][]byte
	for i := range directQueue {
		bodies = append(bodies, fbody(uint64(10+i), directBufSize-1000), fbody(uint64(50+i), 3000))
	}
	staged := stageAll(s, bodies)
	r := stagedWithin(t, staged, release, fmt.Sprintf("the appends of %d buffers waited for the direct write in flight", directQueue))
	if r.err != nil {
		close(release)
		t.Fatal(r.err)
	}
	select {
	case <-began:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("no direct write began")
	}
	time.Sleep(10 * time.Millisecond) // a second write that began would have said so
	if n := writes.Load(); n != 1 {
		close(release)
		t.Fatalf("%d direct writes began at once, want one at a time", n)
	}
	close(release)
	appendServed(t, s, inbox, r.b, bodies)
}

// A sync waiting for its direct writes does not stop the appends behind
// it (it held the pack's lock while it waited, and a copy's stagers, then
// its network reader, waited with it at every commit). The sync still
// returns only once its bytes are written and synced.
func TestPackDirectSyncLetsAppendsGo(t *testing.T) {
	s, inbox, began, release, _ := gatedStore(t, nil)
	first := fbody(1, directBufSize+directBufSize/2)
	sb, err := s.Stage(first)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	<-began
	synced := make(chan error, 1)
	go func() { synced <- s.SyncStaged(sb) }()
	// Once the sync holds syncMu (and a moment more), it waits for the
	// write in flight.
	for s.packs.syncMu.TryLock() {
		s.packs.syncMu.Unlock()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	more := [][]byte{fbody(2, 5000), fbody(3, directBufSize/2)}
	staged := stageAll(s, more)
	r := stagedWithin(t, staged, release, "an append waited for a sync's direct write")
	select {
	case err := <-synced:
		close(release)
		t.Fatalf("the sync returned (%v) before its bytes were written", err)
	default:
	}
	close(release)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	appendServed(t, s, inbox, append([]*StagedBlob{sb}, r.b...), append([][]byte{first}, more...))
}

// A queued direct write that fails abandons the pack: the writes queued
// behind it write nothing, every blob gathered since the last sync is
// refused, and the next bytes go to a new pack and are served exactly.
func TestPackDirectQueuedWriteFailure(t *testing.T) {
	ctx := context.Background()
	s, inbox, _, release, writes := gatedStore(t, errors.New("injected direct write error"))
	var lost [][]byte
	for i := range directQueue - 1 {
		lost = append(lost, fbody(uint64(20+i), directBufSize+100))
	}
	staged := stageAll(s, lost)
	r := <-staged
	if r.err != nil {
		close(release)
		t.Fatal(r.err)
	}
	failedPack := s.packs.wid
	close(release) // the first write fails
	mustNotDurable(t, "sync after a failed queued write", s.SyncStaged(r.b...))
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d direct writes after the first failed, want none", n-1)
	}
	for _, b := range lost {
		mustNotStored(t, s, b)
	}
	s.packs.wrapDirect = nil
	after := [][]byte{fbody(90, 5000), fbody(91, 2<<20)}
	if err := stageBatch(ctx, s, inbox, after); err != nil {
		t.Fatal(err)
	}
	if s.packs.wid == failedPack {
		t.Fatalf("still writing pack %d after its direct write failed", failedPack)
	}
	for _, b := range after {
		mustServe(t, s, b)
	}
}
