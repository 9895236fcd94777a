package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestSkewedClocks: nodes on several machines whose clocks disagree (one
// ten minutes ahead, one ten minutes behind) share one PostgreSQL
// database. A node ahead takes no lease another holds, claims no queue
// item another is delivering, and mail it queues is due at once for the
// others; a node behind claims what is due. (On SQLite every process is on
// one machine, with one clock.)
func TestSkewedClocks(t *testing.T) {
	if store.EngineUnderTest() != store.EnginePostgres {
		t.Skip("one machine, one clock: only PostgreSQL's nodes may disagree on the time")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	open := func(skew time.Duration) *store.Store {
		s, err := store.OpenTest(t, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		store.SkewClock(s, skew)
		return s
	}
	right, ahead, behind := open(0), open(10*time.Minute), open(-10*time.Minute)
	acct := account(t, right, "alice@example.test")

	t.Run("lease", func(t *testing.T) {
		if err := right.TakeLease(ctx, acct.ID, "right", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := ahead.TakeLease(ctx, acct.ID, "ahead", time.Minute); !errors.Is(err, store.ErrLeased) {
			t.Fatalf("a node 10 min ahead took a lease held for 1 min more: %v", err)
		}
		// A lease taken by the node behind lasts its full time for the others.
		if err := right.ReleaseLease(ctx, acct.ID, "right"); err != nil {
			t.Fatal(err)
		}
		if err := behind.TakeLease(ctx, acct.ID, "behind", time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*store.Store{right, ahead} {
			if err := s.TakeLease(ctx, acct.ID, "other", time.Minute); !errors.Is(err, store.ErrLeased) {
				t.Fatalf("the lease of the node behind was taken at once: %v", err)
			}
		}
	})

	// Leases and nodes are read back on the reader's clock: a node behind
	// must not see a dead node's lease live for its skew longer (nor one
	// ahead see a live lease expired), and a node's last beat is as
	// recent for every reader.
	near := func(t *testing.T, what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -3*time.Second || d > 3*time.Second {
			t.Errorf("%s %v on the reader's clock, want about %v (off by %v)", what, got, want, d)
		}
	}
	t.Run("lease read on the reader's clock", func(t *testing.T) {
		acct := account(t, right, "lease-clock@example.test")
		if err := right.TakeLease(ctx, acct.ID, "right", time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			s    *store.Store
			skew time.Duration
		}{{right, 0}, {ahead, 10 * time.Minute}, {behind, -10 * time.Minute}} {
			ls, err := c.s.Leases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			near(t, fmt.Sprintf("lease expiry read by the node %v off", c.skew), ls[acct.ID].Expires, time.Now().Add(c.skew+time.Minute))
		}
	})
	t.Run("nodes seen on the reader's clock", func(t *testing.T) {
		if err := behind.NodeBeat(ctx, "behind", "v1", time.Now().Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			s    *store.Store
			skew time.Duration
		}{{right, 0}, {ahead, 10 * time.Minute}} {
			ns, err := c.s.Nodes(ctx)
			if err != nil || len(ns) != 1 {
				t.Fatalf("nodes %v, %v", ns, err)
			}
			near(t, fmt.Sprintf("last beat of the node behind read by the node %v off", c.skew), ns[0].LastSeen, time.Now().Add(c.skew))
			near(t, fmt.Sprintf("start of the node behind read by the node %v off", c.skew), ns[0].Started, time.Now().Add(c.skew))
		}
	})

	enqueue := func(s *store.Store, subject string) int64 {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		id, err := tx.Enqueue("alice@example.test", []string{"bob@elsewhere.test"}, []byte("Subject: "+subject+"\r\n\r\nx\r\n"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return id
	}
	claim := func(s *store.Store) []int64 {
		t.Helper()
		now := time.Now()
		if s == ahead {
			now = now.Add(10 * time.Minute)
		} else if s == behind {
			now = now.Add(-10 * time.Minute)
		}
		items, err := s.QueueClaimDue(ctx, now, now.Add(time.Minute), 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		return ids
	}

	t.Run("queue", func(t *testing.T) {
		id := enqueue(right, "one")
		if got := claim(right); len(got) != 1 || got[0] != id {
			t.Fatalf("claimed %v, want [%d]", got, id)
		}
		if got := claim(ahead); len(got) != 0 {
			t.Fatalf("a node 10 min ahead claimed %v while another delivers it", got)
		}
		if err := right.QueueDelete(ctx, id); err != nil {
			t.Fatal(err)
		}
		// Mail queued by the node ahead is due at once for the others.
		id = enqueue(ahead, "two")
		if got := claim(right); len(got) != 1 || got[0] != id {
			t.Fatalf("mail queued by a node ahead: claimed %v, want [%d]", got, id)
		}
		if err := right.QueueDelete(ctx, id); err != nil {
			t.Fatal(err)
		}
		// The node behind claims what is due.
		id = enqueue(right, "three")
		if got := claim(behind); len(got) != 1 || got[0] != id {
			t.Fatalf("a node 10 min behind claimed %v, want [%d]", got, id)
		}
		if got := claim(ahead); len(got) != 0 {
			t.Fatalf("a node ahead claimed %v held by the node behind", got)
		}
	})
}
