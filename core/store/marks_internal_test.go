package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// powerCut knows how much of a store's log is on disk, and makes the
// files SQLite would find after a power cut: the database file, the log
// cut to what the last fsync covered, no -shm (SQLite rebuilds it from the
// log), and the packs (their bytes are fsynced before any commit names
// them).
type powerCut struct {
	path string // the database
	hold chan struct{}

	mu      sync.Mutex
	durable int64 // bytes of the log an fsync covered
}

// watchPowerCut records every fsync of s's log: walSync's (the size before
// it started) and SQLite's own at a FULL commit (the size after it). While
// hold is set, walSync's fsyncs wait for it to be closed.
func watchPowerCut(t *testing.T, s *Store) *powerCut {
	t.Helper()
	// A checkpoint would restart the log from its start, and the sizes
	// would no longer say what is on disk: the store was opened after
	// noCheckpoints, and its commits run none (checkpoint.go).
	if s.ckpt.runs.Load() != 0 || s.ckpt.quiet < time.Hour {
		t.Fatal("watchPowerCut needs a store opened after noCheckpoints, which never checkpointed")
	}
	pc := &powerCut{path: s.where}
	pc.mark(pc.logSize(t))
	s.wal.syncFile = func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		pc.mu.Lock()
		hold := pc.hold
		pc.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if err := f.Sync(); err != nil {
			return err
		}
		pc.mark(st.Size())
		return nil
	}
	s.wal.fullCommitted = func() { pc.mark(pc.logSize(t)) }
	return pc
}

func (pc *powerCut) logSize(t *testing.T) int64 {
	st, err := os.Stat(pc.path + "-wal")
	if err != nil {
		t.Error(err)
		return 0
	}
	return st.Size()
}

func (pc *powerCut) mark(n int64) {
	pc.mu.Lock()
	pc.durable = max(pc.durable, n)
	pc.mu.Unlock()
}

// holdFsyncs makes walSync's fsyncs wait until the function it returns is
// called (also at the test's end).
func (pc *powerCut) holdFsyncs(t *testing.T) (release func()) {
	gate := make(chan struct{})
	pc.mu.Lock()
	pc.hold = gate
	pc.mu.Unlock()
	release = sync.OnceFunc(func() {
		pc.mu.Lock()
		pc.hold = nil
		pc.mu.Unlock()
		close(gate)
	})
	t.Cleanup(release)
	return release
}

// image writes the files a power cut would leave into a new directory and
// returns the database's path there.
func (pc *powerCut) image(t *testing.T) string {
	t.Helper()
	pc.mu.Lock()
	durable := pc.durable
	pc.mu.Unlock()
	dst := filepath.Join(t.TempDir(), "mail.db")
	copyFile(t, pc.path, dst, -1)
	copyFile(t, pc.path+"-wal", dst+"-wal", durable)
	packs, err := os.ReadDir(pc.path + "-packs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dst+"-packs", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range packs {
		copyFile(t, filepath.Join(pc.path+"-packs", e.Name()), filepath.Join(dst+"-packs", e.Name()), -1)
	}
	return dst
}

// copyFile copies the first n bytes of src (all if n < 0) to dst.
func copyFile(t *testing.T, src, dst string, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = in
	if n >= 0 {
		r = io.LimitReader(in, n)
	}
	if _, err := io.Copy(out, r); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNumbersNotReusedAfterPowerCut: a UID or MODSEQ another session saw
// is never given again, even when the commit that showed it is lost in a
// power cut (marks.go). An APPEND is seen by another session while its
// fsync has not ended, and a STORE is answered (and its MODSEQ seen)
// before its own; then the power goes: the store opened from what was on
// disk gives the next message and the next change numbers above all that
// was seen. With before appends first, the UID mark is crossed (a FULL
// commit raises it) before the numbers are seen.
func TestNumbersNotReusedAfterPowerCut(t *testing.T) {
	for _, before := range []int{0, uidMarkStep + 20} {
		t.Run(fmt.Sprintf("after %d appends", before), func(t *testing.T) {
			noCheckpoints(t)
			s, mb, uids := inboxStore(t, nil, 2)
			s.wal.lazyDelay = time.Hour // the STORE's fsync comes after the cut
			ctx := context.Background()
			pc := watchPowerCut(t, s)
			for i := 0; i < before; i++ {
				if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbefore\r\n", i)}); err != nil {
					t.Fatal(err)
				}
			}
			release := pc.holdFsyncs(t)
			appended := make(chan error, 1)
			go func() {
				_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: lost\r\n\r\nlost\r\n")})
				appended <- err
			}()
			// Another session sees the new message before the APPEND's
			// fsync (held) ended.
			var seen *MailboxStatus
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				st, err := s.Status(ctx, mb.ID)
				if err != nil {
					t.Fatal(err)
				}
				if st.Messages == uint32(2+before+1) {
					seen = st
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the appended message never became visible")
				}
			}
			// A STORE, answered before its fsync: its MODSEQ is seen.
			res, err := s.StoreFlagsUnchangedSince(ctx, mb.ID, uids[:1], FlagsAdd, []string{`\Seen`}, nil)
			if err != nil || res.ModSeq == 0 {
				t.Fatalf("STORE: %v, %+v", err, res)
			}
			if seen, err = s.Status(ctx, mb.ID); err != nil {
				t.Fatal(err)
			}
			if seen.HighestModSeq < res.ModSeq {
				t.Fatalf("HIGHESTMODSEQ %d below the STORE's MODSEQ %d", seen.HighestModSeq, res.ModSeq)
			}
			// An APPEND answered OK must be on disk; one not answered
			// yet may be lost.
			var answered bool
			select {
			case err := <-appended:
				if err != nil {
					t.Fatal(err)
				}
				answered = true
			default:
			}
			cut := pc.image(t)
			release()
			if !answered {
				if err := <-appended; err != nil {
					t.Fatal(err)
				}
			}

			s2 := openSQLiteAt(t, cut)
			// The cut lost what was not fsynced (or this test proves
			// nothing): the \Seen, and the APPEND if not answered.
			st, err := s2.Status(ctx, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint32(2 + before + boolInt(answered)); st.Messages != want {
				t.Fatalf("%d messages after the power cut, want %d (APPEND answered before: %v)", st.Messages, want, answered)
			}
			if m, err := s2.Message(ctx, mb.ID, uids[0]); err != nil || m.HasFlag(`\Seen`) {
				t.Fatalf("the STORE not yet fsynced survived the power cut (%v): the cut is not one", err)
			}
			if st.UIDNext < seen.UIDNext || st.HighestModSeq < seen.HighestModSeq {
				t.Errorf("after the power cut UIDNEXT %d, HIGHESTMODSEQ %d; a client saw %d, %d", st.UIDNext, st.HighestModSeq, seen.UIDNext, seen.HighestModSeq)
			}
			m, err := s2.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: next\r\n\r\nnext\r\n")})
			if err != nil {
				t.Fatal(err)
			}
			if m.UID < seen.UIDNext || m.ModSeq <= seen.HighestModSeq {
				t.Errorf("APPEND after the power cut got UID %d, MODSEQ %d; a client saw UIDNEXT %d, MODSEQ %d: reused", m.UID, m.ModSeq, seen.UIDNext, seen.HighestModSeq)
			}
			res2, err := s2.StoreFlagsUnchangedSince(ctx, mb.ID, uids[1:2], FlagsAdd, []string{`\Flagged`}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res2.ModSeq <= seen.HighestModSeq {
				t.Errorf("STORE after the power cut got MODSEQ %d; a client saw %d: reused", res2.ModSeq, seen.HighestModSeq)
			}
		})
	}
}

// TestMarksNoGapAfterCleanClose: a store closed cleanly and opened again
// goes on with the next UID and MODSEQ (Close lowers the marks), and the
// marks are raised by FULL commits only.
func TestMarksNoGapAfterCleanClose(t *testing.T) {
	s, mb, _ := inboxStore(t, nil, 3)
	ctx := context.Background()
	st, err := s.Status(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	path := s.where
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSQLiteAt(t, path)
	m, err := s2.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: next\r\n\r\nnext\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != st.UIDNext || m.ModSeq != st.HighestModSeq+1 {
		t.Fatalf("after a clean restart UID %d, MODSEQ %d; want %d, %d (no gap)", m.UID, m.ModSeq, st.UIDNext, st.HighestModSeq+1)
	}
}

// TestFailedFsyncStopsStore: an fsync of the log that fails after an
// APPEND committed (and other sessions may see the message) answers the
// APPEND neither OK nor as "nothing stored" (ErrNotDurable, which a client
// would append again after, making a duplicate): ErrStopped. The store
// then refuses every write, even once fsyncs work again (after a failed
// fsync the kernel may have dropped what it could not write, and a later
// fsync would succeed without it); opened again, it has the message once,
// and the next one gets a new UID.
func TestFailedFsyncStopsStore(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 1)
	ctx := context.Background()
	errDisk := errors.New("injected fsync error")
	s.wal.syncFile = func(*os.File) error { return errDisk }
	body := []byte("Subject: once\r\n\r\nonce\r\n")
	_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: body})
	if !errors.Is(err, ErrStopped) || !errors.Is(err, errDisk) || errors.Is(err, ErrNotDurable) {
		t.Fatalf("APPEND with a failing fsync of the log: %v; want ErrStopped wrapping the disk's error, not ErrNotDurable", err)
	}
	msgs, err := s.Messages(ctx, mb.ID)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("messages seen after the failed fsync: %d, %v; want 2 (it is committed)", len(msgs), err)
	}
	seenUID := msgs[1].UID
	s.wal.syncFile = (*os.File).Sync
	if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: later\r\n\r\nlater\r\n")}); !errors.Is(err, ErrStopped) {
		t.Fatalf("APPEND after the failed fsync: %v, want ErrStopped", err)
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids, FlagsAdd, []string{`\Seen`}); !errors.Is(err, ErrStopped) {
		t.Fatalf("STORE after the failed fsync: %v, want ErrStopped", err)
	}
	if _, err := s.Expunge(ctx, mb.ID, nil); !errors.Is(err, ErrStopped) {
		t.Fatalf("EXPUNGE after the failed fsync: %v, want ErrStopped", err)
	}
	if _, err := s.CreateMailbox(ctx, mb.AccountID, "Later", nil); !errors.Is(err, ErrStopped) {
		t.Fatalf("CREATE after the failed fsync: %v, want ErrStopped", err)
	}
	path := s.where
	s.Close()
	s2 := openSQLiteAt(t, path)
	msgs, err = s2.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var copies int
	for _, m := range msgs {
		b, err := s2.MessageBytes(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(b, body) {
			copies++
		}
	}
	if len(msgs) != 2 || copies != 1 {
		t.Fatalf("after a restart %d messages, %d copies of the appended one; want 2, 1", len(msgs), copies)
	}
	m, err := s2.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: next\r\n\r\nnext\r\n")})
	if err != nil || m.UID <= seenUID {
		t.Fatalf("APPEND after the restart: UID %v, %v; want above %d", m, err, seenUID)
	}
}

// openSQLiteAt opens the SQLite store at path, closed when the test ends.
func openSQLiteAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAppendGroupedDurable: an APPEND (and a COPY) commits without
// holding the writer for its fsync and is answered only after an fsync of
// the log that started after its commit (one per command here), leaving
// the writer at synchronous=FULL for the writes that follow.
func TestAppendGroupedDurable(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 1)
	s.wal.lazyDelay = time.Hour
	ctx := context.Background()
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	var syncs atomic.Int64
	s.wal.syncFile = func(f *os.File) error {
		<-gate
		syncs.Add(1)
		return f.Sync()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: a\r\n\r\na\r\n")})
		done <- err
	}()
	// Committed and the writer free while its fsync hangs: a STORE goes
	// through.
	if _, err := s.StoreFlags(ctx, mb.ID, uids, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("APPEND answered (%v) before its fsync", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 1 {
		t.Fatalf("%d fsyncs of the log for one APPEND, want 1", syncs.Load())
	}
	syncs.Store(0)
	other, err := s.CreateMailbox(ctx, mb.AccountID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pairs, err := s.Copy(ctx, mb.ID, uids, other.ID); err != nil || len(pairs) != 1 {
		t.Fatalf("COPY: %v, %v", pairs, err)
	}
	if syncs.Load() != 1 {
		t.Fatalf("%d fsyncs of the log for one COPY, want 1", syncs.Load())
	}
	if got := writerSynchronous(t, s); got != 2 {
		t.Fatalf("writer synchronous = %d after APPEND and COPY, want 2 (FULL)", got)
	}
}
