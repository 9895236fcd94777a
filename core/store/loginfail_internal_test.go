package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loginFailureRows(t *testing.T, s *Store) int { return countRows(t, s, "login_failures") }

// countRows counts the rows of table.
func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLoginFailures: failures count per key, decay by one per refill, stop
// at the key's capacity, are seen by another Store on the same database,
// and a success clears them.
func TestLoginFailures(t *testing.T) {
	ctx := context.Background()
	a, b := twoStores(t)
	const refill = time.Hour
	src := LoginFailureKey{"src 192.0.2.1/32", 5}
	acct := LoginFailureKey{"acct alice@example.test 192.0.2.1/32", 3}
	for i := 0; i < 4; i++ {
		if err := a.NoteLoginFailure(ctx, []LoginFailureKey{src, acct}, refill); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.LoginFailures(ctx, []string{src.Key, acct.Key, "src 198.51.100.1/32"}, refill)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got[src.Key]-4) > 0.01 || math.Abs(got[acct.Key]-3) > 0.01 || len(got) != 2 {
		t.Fatalf("failures seen by the other store = %v, want src 4, acct 3 (its capacity)", got)
	}
	if err := b.ClearLoginFailures(ctx, acct.Key); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.LoginFailures(ctx, []string{acct.Key}, refill); len(got) != 0 {
		t.Fatalf("after a success: %v", got)
	}
	// Decay: with a short refill, one failure is gone after it.
	if err := a.NoteLoginFailure(ctx, []LoginFailureKey{{"net 203.0.113.0/24", 2}}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.LoginFailures(ctx, []string{"net 203.0.113.0/24"}, 300*time.Millisecond); got["net 203.0.113.0/24"] <= 0.5 {
		t.Fatalf("just failed: %v", got)
	}
	time.Sleep(400 * time.Millisecond)
	if got, _ := a.LoginFailures(ctx, []string{"net 203.0.113.0/24"}, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("after the refill: %v", got)
	}
}

// TestLoginFailuresHostile: keys that are empty, too long or without
// capacity are refused and nothing is written; a flood of distinct keys
// leaves no row once decayed (the next failure sweeps them).
func TestLoginFailuresHostile(t *testing.T) {
	ctx := context.Background()
	s, err := testOpen(t, filepath.Join(t.TempDir(), "mail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, keys := range [][]LoginFailureKey{
		{{"", 5}},
		{{"ok", 5}, {strings.Repeat("x", MaxLoginFailureKey+1), 5}},
		{{"ok", 0}},
	} {
		if err := s.NoteLoginFailure(ctx, keys, time.Minute); !errors.Is(err, ErrInvalid) {
			t.Fatalf("keys %.40v: %v", keys, err)
		}
	}
	if err := s.NoteLoginFailure(ctx, []LoginFailureKey{{"ok", 1}}, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("refill 0: %v", err)
	}
	if n := loginFailureRows(t, s); n != 0 {
		t.Fatalf("%d rows after refused keys", n)
	}
	// A flood from 500 sources, each failure in its own write as logins
	// make them.
	const refill = time.Second
	for i := 0; i < 500; i++ {
		k := LoginFailureKey{fmt.Sprintf("src 10.%d.%d.1/32", i/250, i%250), 20}
		if err := s.NoteLoginFailure(ctx, []LoginFailureKey{k}, refill); err != nil {
			t.Fatal(err)
		}
	}
	// (Rows of the first failures may have decayed and been swept while
	// the flood went on.)
	if n := loginFailureRows(t, s); n == 0 || n > 500 {
		t.Fatalf("%d rows after 500 sources failed", n)
	}
	time.Sleep(refill + 100*time.Millisecond)
	if err := s.NoteLoginFailure(ctx, []LoginFailureKey{{"src 192.0.2.9/32", 20}}, refill); err != nil {
		t.Fatal(err)
	}
	if n := loginFailureRows(t, s); n != 1 {
		t.Fatalf("%d rows after the flood decayed, want 1 (the last failure's)", n)
	}
}

// TestLoginFailuresPruneBounded: after a flood decayed, one failure's
// write deletes at most loginFailurePrune of its rows (deleting them all
// at once held the writer 2.6 s for a million on SQLite), and the
// failures that follow delete the rest.
func TestLoginFailuresPruneBounded(t *testing.T) {
	ctx := context.Background()
	s, err := testOpen(t, filepath.Join(t.TempDir(), "mail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const flood = 3*loginFailurePrune + 10
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	decayed := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < flood; i++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures(key, expires) VALUES (?, ?)`,
			fmt.Sprintf("src 2001:db8:%x::/64", i), decayed); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	note := func(i int) {
		t.Helper()
		if err := s.NoteLoginFailure(ctx, []LoginFailureKey{{fmt.Sprintf("src 192.0.2.%d/32", i), 20}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	note(1)
	if n := loginFailureRows(t, s); n < flood+1-loginFailurePrune {
		t.Fatalf("one failure's write left %d of %d decayed rows: it deleted more than %d", n-1, flood, loginFailurePrune)
	}
	for i := 2; i <= 4; i++ {
		note(i)
	}
	if n := loginFailureRows(t, s); n != 4 {
		t.Fatalf("%d rows after 4 failures, want those 4 (the decayed flood pruned)", n)
	}
}
