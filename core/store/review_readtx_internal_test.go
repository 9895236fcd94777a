package store

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// TestReadTxCancelledMidRead: Snapshots and Deltas whose context ends at
// any moment leave no reader connection inside a transaction and none
// held.
func TestReadTxCancelledMidRead(t *testing.T) {
	sqliteOnly(t)
	const readers = 2
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, Readers: readers}, 2000)
	bg := context.Background()
	for i := 0; i < 300; i++ {
		ctx, cancel := context.WithCancel(bg)
		go func() {
			time.Sleep(time.Duration(rand.Intn(400)) * time.Microsecond)
			cancel()
		}()
		if i%2 == 0 {
			s.Snapshot(ctx, mb.ID, 0)
		} else {
			s.Delta(ctx, mb.ID, 1)
		}
		cancel()
	}
	wctx, wcancel := context.WithTimeout(bg, 5*time.Second)
	defer wcancel()
	var cs []interface{ Close() error }
	for range readers {
		c, err := s.r.Conn(wctx)
		if err != nil {
			t.Fatalf("a reader connection held after cancelled reads: %v", err)
		}
		cs = append(cs, c)
		c.Raw(func(dc any) error {
			if !dc.(*sqlite3.SQLiteConn).AutoCommit() {
				t.Errorf("a pooled reader connection is inside a transaction")
			}
			return nil
		})
	}
	for _, c := range cs {
		c.Close()
	}
	if _, err := s.Snapshot(bg, mb.ID, 0); err != nil {
		t.Errorf("Snapshot after: %v", err)
	}
}
