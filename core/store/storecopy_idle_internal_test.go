package store

import (
	"context"
	"os"
	"testing"
	"time"
)

// sleepyPack is a pack handle whose every write takes its time (a slow
// disk, or object storage far away).
type sleepyPack struct {
	*os.File
	delay time.Duration
}

func (s *sleepyPack) WriteAt(b []byte, off int64) (int, error) {
	time.Sleep(s.delay)
	return s.File.WriteAt(b, off)
}

// TestStoreCopyOutlastsIdleBound: `store copy` into PostgreSQL copies an
// account in one target transaction, and stages the message bytes of each
// batch between its statements; a batch whose bytes take longer to move
// than idle_in_transaction_session_timeout (pgIdleInTx: 60 s, meant to end
// a stopped node's transaction) is no reason to end the copy's. Before,
// the server ended the copy's session and the copy failed, every run
// again, for an account whose batch of big messages took that long.
func TestStoreCopyOutlastsIdleBound(t *testing.T) {
	postgresOnly(t, "the bound is PostgreSQL's session setting")
	defer func(d time.Duration) { pgIdleInTx = d }(pgIdleInTx)
	pgIdleInTx = 500 * time.Millisecond
	ctx := context.Background()
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	dst, _ := copyTarget(t, false)
	// Each message's bytes take 150 ms to write: a batch of alice's 14
	// takes 2 s between two statements of the target's transaction.
	dst.packs.wrap = func(f *os.File) packFile { return &sleepyPack{File: f, delay: 150 * time.Millisecond} }
	if _, err := Copy(ctx, src, dst, &CopyOptions{Workers: 1}); err != nil {
		t.Fatalf("copy whose staging outlasts the idle bound: %v", err)
	}
	r, err := VerifyCopy(ctx, src, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Accounts != 2 {
		t.Fatalf("verify: %+v", r)
	}
}
