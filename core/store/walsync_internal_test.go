package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writerSynchronous reads PRAGMA synchronous on the writer connection
// (0 OFF, 1 NORMAL, 2 FULL).
func writerSynchronous(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFlagsDurableSoon pins what a STORE promises (walsync.go): it is
// answered once committed, without waiting for an fsync of the log, and an
// fsync that starts after its commit follows within flagSyncBound with no
// other write to bring it; it leaves the writer connection at
// synchronous=FULL for the writes of mail that follow, also when the
// transaction fails; a failing fsync does not fail the STORE (it was
// answered) but is not taken for done, and stops the store: no later
// fsync, even one that succeeds, is taken for one (marks.go, ErrStopped).
func TestFlagsDurableSoon(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d before, want 2 (FULL)", got)
	}
	entered := make(chan time.Time, 8)
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
	s.wal.syncFile = func(f *os.File) error {
		entered <- time.Now()
		<-gate // a disk that takes its time
		return f.Sync()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.StoreFlags(ctx, mb.ID, uids[:2], FlagsAdd, []string{`\Seen`})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		open()
		t.Fatal("STORE not answered while the fsync of the log hangs")
	}
	answered := time.Now()
	// Answered while no fsync could end: now one must come on its own.
	select {
	case at := <-entered:
		if d := at.Sub(answered); d > flagSyncBound+time.Second {
			t.Errorf("the fsync came %v after the STORE's answer, want about %v", d, flagSyncBound)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no fsync of the log after a STORE answered before it")
	}
	open()
	waitSynced(t, s)
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d after a STORE, want 2 (FULL)", got)
	}
	// A STORE to a mailbox that does not exist fails inside the
	// transaction: FULL is back all the same.
	if _, err := s.StoreFlags(ctx, mb.ID+100, uids, FlagsAdd, []string{`\Seen`}); err == nil {
		t.Fatal("STORE to a missing mailbox succeeded")
	}
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d after a failed STORE, want 2 (FULL)", got)
	}
	// A failed fsync: the STORE was answered OK; the change is not taken
	// for durable, and nothing is after it.
	errDisk := errors.New("injected fsync error")
	var fails atomic.Int64
	s.wal.syncFile = func(*os.File) error { fails.Add(1); return errDisk }
	if _, err := s.StoreFlags(ctx, mb.ID, uids[2:], FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatalf("STORE with a failing fsync: %v, want answered", err)
	}
	for deadline := time.Now().Add(10 * time.Second); fails.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no fsync tried after the STORE")
		}
	}
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error { syncs.Add(1); return f.Sync() }
	if err := s.wal.settle(); !errors.Is(err, ErrStopped) || !errors.Is(err, errDisk) || syncs.Load() != 0 {
		t.Fatalf("settle after a failed fsync: %v, %d fsyncs; want ErrStopped with the disk's error, none", err, syncs.Load())
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids[2:], FlagsAdd, []string{`\Seen`}); !errors.Is(err, ErrStopped) {
		t.Fatalf("STORE after a failed fsync: %v, want ErrStopped", err)
	}
}

// waitSynced waits until every flag change answered before its fsync is
// covered by one.
func waitSynced(t *testing.T, s *Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.wal.mu.Lock()
		done := s.wal.done >= s.wal.lazy
		s.wal.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("flag changes still not fsynced")
		}
	}
}

// TestFlagsCoveredByLaterExpunge: a flag change answered before its fsync
// is never reordered after a later durable write: an EXPUNGE after it (the
// client's STORE \Deleted, then EXPUNGE) is answered only after an fsync
// of the log that started after both commits, which makes both durable.
func TestFlagsCoveredByLaterExpunge(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 2)
	s.wal.lazyDelay = time.Hour // only the EXPUNGE's fsync
	ctx := context.Background()
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error {
		<-gate
		syncs.Add(1)
		return f.Sync()
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids[:1], FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids[1:], FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Expunge(ctx, mb.ID, uids[:1])
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("EXPUNGE answered (%v) before any fsync of the log ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 1 {
		t.Fatalf("%d fsyncs, want the EXPUNGE's one", syncs.Load())
	}
	s.wal.mu.Lock()
	covered := s.wal.done >= s.wal.lazy
	s.wal.mu.Unlock()
	if !covered {
		t.Fatal("the EXPUNGE's fsync is not counted as covering the flag changes before it")
	}
}

// TestFlagsSettledAtClose: flag changes answered before their fsync are
// fsynced when the store closes, before the database is.
func TestFlagsSettledAtClose(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 1)
	s.wal.lazyDelay = time.Hour
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error { syncs.Add(1); return f.Sync() }
	if _, err := s.StoreFlags(context.Background(), mb.ID, uids, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 0 {
		t.Fatalf("%d fsyncs before Close, want 0 (the bound is an hour here)", syncs.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 1 {
		t.Fatalf("%d fsyncs at Close, want 1", syncs.Load())
	}
}

// TestGroupedFlagsShareFsyncs: STOREs at once share fsyncs of the log (one
// under way, the next covers everyone who came meanwhile).
func TestGroupedFlagsShareFsyncs(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 20)
	ctx := context.Background()
	var mu sync.Mutex
	var syncs int
	s.wal.syncFile = func(f *os.File) error {
		mu.Lock()
		syncs++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a slow disk: the others pile up
		return f.Sync()
	}
	var wg sync.WaitGroup
	for _, uid := range uids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uid}, FlagsAdd, []string{`$K`}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitSynced(t, s)
	mu.Lock()
	defer mu.Unlock()
	if syncs >= len(uids) || syncs < 1 {
		t.Fatalf("%d fsyncs for %d STOREs at once, want fewer (shared)", syncs, len(uids))
	}
	// Every STORE is there, each with its own MODSEQ step.
	ms, err := s.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, m := range ms {
		if len(m.Flags) != 1 || m.Flags[0] != "$K" {
			t.Fatalf("UID %d flags %v", m.UID, m.Flags)
		}
		if seen[m.ModSeq] {
			t.Fatalf("MODSEQ %d given twice", m.ModSeq)
		}
		seen[m.ModSeq] = true
	}
	t.Logf("%d fsyncs for %d STOREs at once", syncs, len(uids))
}

// TestWALSyncOrder: sync returns only after an fsync that started after
// the call; a caller arriving while one runs starts the next at once
// rather than waiting for that one to end (a STORE waits about one fsync,
// not one and a half), and one arriving while syncDepth run waits for one
// of them to end.
func TestWALSyncOrder(t *testing.T) {
	s, _, _ := inboxStore(t, nil, 1)
	w := s.wal
	var gates [3]chan struct{}
	var opens [3]func()
	for i := range gates {
		gates[i] = make(chan struct{})
		opens[i] = sync.OnceFunc(func() { close(gates[i]) })
	}
	t.Cleanup(func() { // before the store closes, which waits for fsyncs
		for _, open := range opens {
			open()
		}
	})
	var n atomic.Int64
	w.syncFile = func(f *os.File) error {
		<-gates[n.Add(1)-1] // each fsync is slow until let go
		return f.Sync()
	}
	call := func() chan error {
		c := make(chan error, 1)
		go func() { c <- w.sync() }()
		return c
	}
	waitFor := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); n.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d fsyncs started, want %d", n.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	pending := func(c chan error, what string) {
		t.Helper()
		select {
		case err := <-c:
			t.Fatalf("%s returned (%v) before an fsync that started after it ended", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	first := call()
	waitFor(1)
	second := call()
	waitFor(2) // did not wait for the first fsync to end
	pending(second, "the second sync")
	third := call()
	time.Sleep(20 * time.Millisecond)
	if n.Load() != 2 {
		t.Fatalf("%d fsyncs at once, want at most %d", n.Load(), syncDepth)
	}
	opens[1]()
	if err := <-second; err != nil { // while the first fsync still runs
		t.Fatal(err)
	}
	waitFor(3) // the third started once a place was free
	pending(third, "the third sync")
	pending(first, "the first sync")
	opens[0]()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	pending(third, "the third sync")
	opens[2]()
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 {
		t.Fatalf("%d fsyncs, want 3", n.Load())
	}
}

// TestClaimRecentNothingLeft: a \Recent claim that finds every message
// already claimed reads only: it answers while another transaction holds
// the writer. One that claims waits for no fsync at all (recent.go: a claim
// lost in a power cut only makes messages recent again), and leaves the
// writer at synchronous=FULL for the mail that follows.
func TestClaimRecentNothingLeft(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}
	last := uids[len(uids)-1]
	if before, err := s.ClaimRecent(ctx, mb.ID, last); err != nil || before != 0 {
		t.Fatalf("first claim: %d, %v", before, err)
	}
	if syncs.Load() != 0 {
		t.Fatalf("%d fsyncs for a claim, want 0 (nothing promised on it)", syncs.Load())
	}
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d after a claim, want 2 (FULL)", got)
	}
	if from, err := s.RecentFrom(ctx, mb.ID); err != nil || from != last {
		t.Fatalf("claimed up to %d (%v), want %d", from, err, last)
	}
	// A claim that loses the race (read nothing left... then found it
	// claimed in its transaction) changes no row and needs no fsync; so
	// does a STORE that changes nothing.
	syncs.Store(0)
	if _, err := s.StoreFlags(ctx, mb.ID, uids[:1], FlagsRemove, []string{"$Absent"}); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 0 {
		t.Fatalf("%d fsyncs for a STORE that changed nothing, want 0", syncs.Load())
	}
	// Another transaction holds the writer.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	before, err := s.ClaimRecent(short, mb.ID, last)
	if err != nil || before != last {
		t.Fatalf("claim with nothing left while the writer is busy: %d, %v; want %d at once", before, err, last)
	}
}

// TestClaimRecentTakesTurns: sessions that all see a new message at once
// and claim it do not all queue for the writer: the first takes it, the
// others wait for their turn and then find the message claimed, reading
// only. Exactly one of them gets the message.
func TestClaimRecentTakesTurns(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	last := uids[len(uids)-1]
	// Another transaction holds the writer while the claims start.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := s.w.Stats().WaitCount
	const n = 10
	got := make(chan uint32, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			before, err := s.ClaimRecent(ctx, mb.ID, last)
			errs <- err
			got <- before
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.w.Stats().WaitCount == base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time for the others to queue, if they would
	waiting := s.w.Stats().WaitCount - base
	tx.Rollback()
	won := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		switch before := <-got; before {
		case 0:
			won++
		case last:
		default:
			t.Errorf("a claim saw %d claimed before, want 0 or %d", before, last)
		}
	}
	if won != 1 {
		t.Errorf("%d claims got the messages, want 1", won)
	}
	if waiting != 1 {
		t.Errorf("%d claims queued for the writer, want 1 (the others wait their turn and then only read)", waiting)
	}
}

// TestGroupedExpungeDurable: an EXPUNGE is a grouped write: it returns only
// after an fsync of the log that started after its commit (it does not
// hold the writer for SQLite's own fsync at commit), and a failed fsync
// fails it with ErrNotDurable.
func TestGroupedExpungeDurable(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	s.wal.lazyDelay = time.Hour // the STORE's own fsync would be counted
	ctx := context.Background()
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	syncs.Store(0)
	gone, err := s.Expunge(ctx, mb.ID, uids[:1])
	if err != nil || len(gone) != 1 || gone[0] != uids[0] {
		t.Fatalf("expunge: %v, %v", gone, err)
	}
	if syncs.Load() != 1 {
		t.Fatalf("%d grouped fsyncs of the log for one EXPUNGE, want 1", syncs.Load())
	}
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d after an EXPUNGE, want 2 (FULL)", got)
	}
	// Nothing to expunge: nothing written, no fsync.
	syncs.Store(0)
	if gone, err := s.Expunge(ctx, mb.ID, uids[:1]); err != nil || len(gone) != 0 {
		t.Fatalf("expunge again: %v, %v", gone, err)
	}
	if syncs.Load() != 0 {
		t.Fatalf("%d fsyncs for an EXPUNGE that removed nothing, want 0", syncs.Load())
	}
	errDisk := errors.New("injected fsync error")
	s.wal.syncFile = func(*os.File) error { return errDisk }
	if _, err := s.Expunge(ctx, mb.ID, nil); !errors.Is(err, ErrStopped) || !errors.Is(err, errDisk) {
		t.Fatalf("EXPUNGE with a failing fsync: %v, want ErrStopped wrapping the disk's error", err)
	}
}

// BenchmarkGroupedStores10: 10 sessions each doing STOREs of a flag one
// after the other, on one mailbox, with the real fsync: each STORE's
// latency (p50, p90): a STORE waits for its commit, not for an fsync. The
// STOREs run under a context that can end, as an IMAP session's do.
func BenchmarkGroupedStores10(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "mail.db"), &Options{ChangePoll: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.CreateDomain(ctx, "example.test")
	a, err := s.CreateAccount(ctx, "u@example.test", "pw", nil)
	if err != nil {
		b.Fatal(err)
	}
	mb, _ := s.Mailbox(ctx, a.ID, "INBOX")
	var uids []uint32
	for i := 0; i < 10; i++ {
		m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))})
		if err != nil {
			b.Fatal(err)
		}
		uids = append(uids, m.UID)
	}
	// A context that can end, as an IMAP session's (writeCtx).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := timedSessions(b, 10, func(k, i int) error {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		_, err := s.StoreFlags(sctx, mb.ID, []uint32{uids[k]}, op, []string{`\Flagged`})
		return err
	})
	reportLatency(b, "", slices.Concat(lat...))
}

// TestGroupedChangeToldAfterFsync: an expunge is told to the other
// sessions' watchers only once the group's fsync of the log is done: until
// then a crash could still lose it, so no IDLE may show it. While the
// fsync hangs, nothing is signalled; once it returns, the watcher hears of
// the change. A flag change is told at once, as it is answered.
func TestGroupedChangeToldAfterFsync(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 2)
	ctx := context.Background()
	w := s.Watch(mb.AccountID)
	defer w.Close()
	// Drain anything the set-up's appends signalled.
	select {
	case <-w.C:
	default:
	}
	s.wal.lazyDelay = time.Hour
	if _, err := s.StoreFlags(ctx, mb.ID, uids[:1], FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was not told of a flag change once it was answered")
	}
	entered := make(chan struct{}, 4)
	gate := make(chan struct{})
	s.wal.syncFile = func(f *os.File) error {
		entered <- struct{}{}
		<-gate // a slow disk
		return f.Sync()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Expunge(ctx, mb.ID, uids[:1])
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the EXPUNGE never reached the log's fsync")
	}
	// Give a (wrong) notification every chance to arrive.
	select {
	case <-w.C:
		close(gate)
		<-done
		t.Fatal("a watcher was told of an expunge before the fsync that makes it durable")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was never told of the expunge after its fsync")
	}
}

// BenchmarkStoresBesideAppends: 5 sessions STORE a flag while 5 others
// APPEND 4 KiB messages, on one mailbox, with the real fsync (the load of
// make bench-imap's STORE and APPEND, without IMAP): each command's
// latency (p50, p90). A STORE waits for the writer, which an APPEND held
// for its fsync before session 10 (walsync.go). Each write runs under a
// context that can end, as an IMAP session's does (its server's), so
// that what the statements do with it is measured too (writeCtx).
func BenchmarkStoresBesideAppends(b *testing.B) {
	s, mb, uids := inboxStore(b, nil, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	lat := timedSessions(b, 10, func(k, i int) error {
		if k < 5 {
			op := FlagsAdd
			if i%2 == 1 {
				op = FlagsRemove
			}
			_, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[k]}, op, []string{`\Flagged`})
			return err
		}
		m := slices.Clone(body)
		copy(m, fmt.Sprintf("Subject: %d %d\r\n\r\n", k, i))
		_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: m})
		return err
	})
	reportLatency(b, "store-", slices.Concat(lat[:5]...))
	reportLatency(b, "append-", slices.Concat(lat[5:]...))
}

// timedSessions runs cmd(k, i) for i < b.N in n sessions (k < n) at once,
// with the timer on, and returns each session's latencies.
func timedSessions(b *testing.B, n int, cmd func(k, i int) error) [][]time.Duration {
	lat := make([][]time.Duration, n)
	b.ResetTimer()
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := cmd(k, i); err != nil {
					b.Error(err)
					return
				}
				lat[k] = append(lat[k], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	return lat
}

// reportLatency reports the p50 and p90 of lat, in ms, named with prefix.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, prefix+"p90-ms")
}
