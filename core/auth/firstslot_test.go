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
	unavailableWithin(t, 20*time.Second, "a first login with every place at the old server taken (MaxWait 500 ms)", func() error {
		_, err := p.Login(ctx, req("erin@example.test", "Erin-Secret-1", "192.0.2.2"))
		return err
	})
	select {
	case u := <-m.entered:
		t.Fatalf("%s reached the old server beside the one place", u)
	default:
	}
}

// unavailableWithin runs login and fails the test unless it returns an
// error matching ErrUnavailable within bound. (A login still running
// then is left to its context.)
func unavailableWithin(t *testing.T, bound time.Duration, what string, login func() error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- login() }()
	select {
	case err := <-done:
		if !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("%s: %v, want ErrUnavailable", what, err)
		}
		t.Logf("%s: answered after %v", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("%s: not answered after %v", what, bound)
	}
}
