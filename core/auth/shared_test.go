package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/internal/pgtest"
	"mailferry/core/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// twoNodes is two Policies on two Stores on one database: two nodes on
// PostgreSQL, or two processes on one SQLite file.
func twoNodes(t *testing.T, engine string, o auth.Options) (a, b *auth.Policy) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	opts := &store.Options{Logger: quiet()}
	if engine == store.EnginePostgres {
		opts.DatabaseURL = pgtest.URL(t)
	}
	var ps []*auth.Policy
	for i := range 2 {
		st, err := store.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if i == 0 {
			ctx := context.Background()
			if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateAccount(ctx, "carol@example.test", "Carol-Secret-1", nil); err != nil {
				t.Fatal(err)
			}
		}
		o := o
		o.Store, o.Logger, o.Delay = st, quiet(), -1
		p, err := auth.New(o)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps[0], ps[1]
}

// TestSharedLimits: two nodes on one database limit failed logins as one
// server. A flood of guesses spread over both, in turns and at once, gets
// no more failures checked than one node's bucket before both refuse; the
// owner from elsewhere still gets in on either; a success on one clears
// its account's failures for both.
func TestSharedLimits(t *testing.T) {
	for _, engine := range []string{store.EngineSQLite, store.EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			const perAccount = 6
			a, b := twoNodes(t, engine, auth.Options{PerAccount: perAccount, PerSource: 100, Refill: time.Hour})
			nodes := []*auth.Policy{a, b}

			// In turns: failures on A count on B.
			failed := 0
			for i := range 4 * perAccount {
				_, err := nodes[i%2].Login(ctx, req("carol@example.test", fmt.Sprintf("guess-%d", i), "198.51.100.1"))
				switch {
				case errors.Is(err, auth.ErrFailed):
					failed++
				case errors.Is(err, auth.ErrLimited):
				default:
					t.Fatalf("guess %d: %v", i, err)
				}
			}
			if failed != perAccount {
				t.Fatalf("%d guesses checked over two nodes, want %d (one bucket)", failed, perAccount)
			}
			for i, p := range nodes {
				if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "198.51.100.1")); !errors.Is(err, auth.ErrLimited) {
					t.Fatalf("node %d after the shared budget was spent: %v, want ErrLimited", i, err)
				}
				if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "203.0.113.5")); err != nil {
					t.Fatalf("the owner from elsewhere on node %d: %v", i, err)
				}
			}

			// A success clears the account's failures on both nodes.
			src := "192.0.2.7"
			for i := range perAccount - 1 {
				if _, err := nodes[i%2].Login(ctx, req("carol@example.test", "wrong", src)); !errors.Is(err, auth.ErrFailed) {
					t.Fatalf("guess %d: %v", i, err)
				}
			}
			if _, err := b.Login(ctx, req("carol@example.test", "Carol-Secret-1", src)); err != nil {
				t.Fatalf("the owner after %d typos: %v", perAccount-1, err)
			}
			for i := range perAccount - 1 {
				if _, err := a.Login(ctx, req("carol@example.test", "wrong", src)); !errors.Is(err, auth.ErrFailed) {
					t.Fatalf("typo %d after the success on the other node: %v (failures not cleared)", i, err)
				}
			}

		})
	}
}

// TestSharedFloodAtOnce: a flood of parallel guesses from one source
// spread over two nodes is limited as one. A wave on node A, then one on
// node B: B checks none, A's failures spent the bucket. Then a wave from
// another source on both at once: one bucket is checked between the two
// nodes (each login is reserved in the shared count before its check),
// and then every guess on either node is refused.
func TestSharedFloodAtOnce(t *testing.T) {
	ctx := context.Background()
	const perAccount = 5
	const refill = time.Hour
	a, b := twoNodes(t, store.EnginePostgres, auth.Options{PerAccount: perAccount, PerSource: 1000, Refill: refill, MaxWait: time.Minute})
	wave := func(src string, nodes ...*auth.Policy) map[string]int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		answers := map[string]int{}
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := nodes[i%len(nodes)].Login(ctx, req("carol@example.test", fmt.Sprintf("guess-%d", i), src))
				kind := answerKind(err)
				mu.Lock()
				answers[kind]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return answers
	}
	if got := wave("198.51.100.9", a); got["failed"] != perAccount || got["limited"] != 30-perAccount {
		t.Fatalf("wave on node A: %v", got)
	}
	if got := wave("198.51.100.9", b); got["limited"] != 30 {
		t.Fatalf("wave on node B after node A's: %v, want all 30 refused", got)
	}
	got := wave("198.51.100.10", a, b)
	t.Logf("a wave on both at once: %v", got)
	if got["failed"] != perAccount || got["limited"] != 30-perAccount {
		t.Fatalf("wave on both: %v, want %d checked (one bucket for both nodes), the rest refused", got, perAccount)
	}
	for i, p := range []*auth.Policy{a, b} {
		if _, err := p.Login(ctx, req("carol@example.test", "again", "198.51.100.10")); !errors.Is(err, auth.ErrLimited) {
			t.Fatalf("node %d after the burst: %v, want ErrLimited", i, err)
		}
	}
}

// TestSharedBurstReserved: guesses checked at once on two nodes are
// limited as one bucket: each login is counted in the shared store before
// its check, so a wave of parallel guesses from one source spread over
// both nodes gets exactly one bucketful checked, not one per node. And a
// success gives its place back: an office's good logins from one address
// on both nodes at once, two bucketfuls, all get in.
func TestSharedBurstReserved(t *testing.T) {
	for _, engine := range []string{store.EngineSQLite, store.EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			const perAccount, perSource = 5, 8
			a, b := twoNodes(t, engine, auth.Options{PerAccount: perAccount, PerSource: 1000, Refill: time.Hour, MaxWait: time.Minute})
			nodes := []*auth.Policy{a, b}
			var wg sync.WaitGroup
			var mu sync.Mutex
			answers := map[string]int{}
			start := make(chan struct{})
			for i := range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := nodes[i%2].Login(ctx, req("carol@example.test", fmt.Sprintf("guess-%d", i), "198.51.100.20"))
					kind := answerKind(err)
					mu.Lock()
					answers[kind]++
					mu.Unlock()
				}()
			}
			close(start)
			wg.Wait()
			if answers["failed"] != perAccount || answers["limited"] != 30-perAccount {
				t.Fatalf("a wave of 30 guesses on two nodes at once: %v, want %d checked (one bucket for both nodes), the rest refused", answers, perAccount)
			}

			// Good logins give their place back: an office behind one
			// address logging in on both nodes at once all get in, each
			// as another's check ends.
			// (MaxWait is long: under -race on a loaded machine a hash
			// takes seconds, and the last of them waits for all before.)
			const office = 2 * perSource
			c, d := twoNodes(t, engine, auth.Options{PerAccount: perAccount, PerSource: perSource, PerNetwork: perSource, Refill: time.Hour, MaxWait: 5 * time.Minute})
			errs := make(chan error, office)
			for i := range office {
				go func() {
					_, err := []*auth.Policy{c, d}[i%2].Login(ctx, req("carol@example.test", "Carol-Secret-1", "203.0.113.30"))
					errs <- err
				}()
			}
			for i := range office {
				if err := <-errs; err != nil {
					t.Fatalf("good login %d of %d at once from one address on two nodes: %v", i, office, err)
				}
			}
			// And a success still clears the account's failures, so the
			// owner has the whole bucket again for typos.
			for i := range perAccount - 1 {
				if _, err := c.Login(ctx, req("carol@example.test", "typo", "203.0.113.30")); !errors.Is(err, auth.ErrFailed) {
					t.Fatalf("typo %d after good logins: %v", i, err)
				}
			}
		})
	}
}

// answerKind names a login's answer: "failed", "limited", or the error's
// text (nil for a success).
func answerKind(err error) string {
	switch {
	case errors.Is(err, auth.ErrFailed):
		return "failed"
	case errors.Is(err, auth.ErrLimited):
		return "limited"
	}
	return fmt.Sprint(err)
}
