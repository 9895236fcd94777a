package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// stuckMigrator's first logins wait for the old server until their
// context ends (an old server that never answers, or an attacker's
// stream of first logins that keeps every place taken).
type stuckMigrator struct{ entered chan string }

func (m stuckMigrator) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	m.entered <- username
	<-ctx.Done()
	return nil, ctx.Err()
}
func (stuckMigrator) LoggedIn(*store.Account, string) {}

// TestFirstLoginPlaceWaitBounded: a first login that finds every place
// at the old server taken (MaxFirstLogins) waits for one MaxWait at most
// and is then "try again later", as a login waiting for a hashing slot
// is; it does not hang until a place frees (FirstLoginTimeout, 2 minutes
// by default, for each login ahead of it).
func TestFirstLoginPlaceWaitBounded(t *testing.T) {
	m := stuckMigrator{entered: make(chan string, 4)}
	p, _ := newPolicy(t, auth.Options{Migrator: m, MaxFirstLogins: 1, MaxWait: 500 * time.Millisecond, FirstLoginTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Login(ctx, req("dave@example.test", "Dave-Secret-1", "192.0.2.1")) // takes the one place
	<-m.entered
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := p.Login(ctx, req("erin@example.test", "Erin-Secret-1", "192.0.2.2"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("a first login with every place taken: %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("answered after %v, MaxWait 500 ms", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a first login with every place at the old server taken is not answered after 20 s (MaxWait 500 ms)")
	}
	select {
	case u := <-m.entered:
		t.Fatalf("%s reached the old server beside the one place", u)
	default:
	}
}
