package migrate

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// quietEngine is an engine (no catch-up runs, no log) over a store of its
// own with the domain example.test, both closed when the test ends.
func quietEngine(t *testing.T) (*store.Store, *Engine) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateDomain(context.Background(), "example.test"); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Store: st, CatchUpInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return st, e
}

// A password the admin set is never kept to log in to the old server with:
// it is not the old server's, and sending it there would give it away.
func TestLoggedInKeepsOnlyOldPasswords(t *testing.T) {
	st, e := quietEngine(t)
	ctx := context.Background()
	for _, tc := range []struct {
		origin string
		keep   bool
	}{{store.PasswordAdmin, false}, {store.PasswordRandom, false}, {store.PasswordOld, true}} {
		a, err := st.CreateAccount(ctx, tc.origin+"@example.test", "pw-"+tc.origin, &store.AccountOptions{Migration: store.MigDone, PasswordOrigin: tc.origin})
		if err != nil {
			t.Fatal(err)
		}
		e.LoggedIn(a, "pw-"+tc.origin)
		e.mu.Lock()
		_, kept := e.creds[a.ID]
		e.mu.Unlock()
		if kept != tc.keep {
			t.Errorf("%s password kept for the old server: %v, want %v", tc.origin, kept, tc.keep)
		}
	}
}

// An old server that ignores the domain of user names migrates only its
// own domain: another domain's first login is refused before the old
// server is asked, and nothing is created.
func TestFirstLoginRefusedWhereTheOldServerIgnoresDomains(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	s := oldserver.DefaultSettings(oldserver.MustParseHost("[192.0.2.7]")).WithDefaults()
	s.IgnoresDomain, s.DefaultDomain = true, "example.test"
	if err := SetDomain(ctx, st, "other.test", &s, true); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Store: st, CatchUpInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.FirstLogin(ctx, "carol@other.test", "CarolSecret1"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("first login of another domain on a server that ignores domains: %v", err)
	}
	if as, _ := st.Accounts(ctx, ""); len(as) != 0 {
		t.Fatalf("accounts: %v", as)
	}
}

// The password a first login left to hash answers only for its own
// account: if that account is deleted and another is made before the hash
// is stored (with its ID, on SQLite before account_id_top), the other
// account does not open with it.
func TestCheckPendingOnlyForItsAccount(t *testing.T) {
	st, e := quietEngine(t)
	ctx := context.Background()
	mk := func(addr, pw string) *store.Account {
		a, err := st.CreateAccount(ctx, addr, pw, &store.AccountOptions{Migration: store.MigPending,
			OldLogin: addr, PasswordOrigin: store.PasswordOld, HashLater: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice := mk("alice@example.test", "Alice-Old-1")
	// alice's first login: her hash is still being stored (held here).
	e.mu.Lock()
	e.pending[alice.ID] = pendingHash{address: alice.Address, sum: sha256.Sum256([]byte("Alice-Old-1")), stored: make(chan struct{})}
	e.mu.Unlock()
	if known, ok := e.CheckPending(alice, "Alice-Old-1"); !known || !ok {
		t.Fatalf("alice's own password: known %v, ok %v", known, ok)
	}
	if err := st.DeleteAccount(ctx, alice.Address); err != nil {
		t.Fatal(err)
	}
	bob := mk("bob@example.test", "Bob-Old-1")
	if known, ok := e.CheckPending(bob, "Alice-Old-1"); known || ok {
		t.Errorf("bob's account answered by alice's pending password: known %v, ok %v", known, ok)
	}
}

// An account deleted while the engine runs leaves nothing of its own to
// an account made after it: its old-server password, kept by ID, is not
// sent to the old server in the new account's name (SQLite gave the new
// account the deleted one's ID before account_id_top), and the new
// account's copy logs in with the domain's master user instead.
func TestCredentialsNotInheritedByANewAccount(t *testing.T) {
	st, e := quietEngine(t)
	ctx := context.Background()
	alice, err := st.CreateAccount(ctx, "alice@example.test", "Alice-Secret-1", &store.AccountOptions{Migration: store.MigDone,
		PasswordOrigin: store.PasswordOld, OldLogin: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.LoggedIn(alice, "Alice-Secret-1")
	if c, ok := e.credsFor(alice); !ok || c.Password != "Alice-Secret-1" {
		t.Fatalf("alice's password not kept for the old server: %+v", c)
	}
	if err := st.DeleteAccount(ctx, alice.Address); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMasterCredentials("example.test", "master", "Master-Secret"); err != nil {
		t.Fatal(err)
	}
	bob, err := st.CreateAccount(ctx, "bob@example.test", "random", &store.AccountOptions{Migration: store.MigPending,
		PasswordOrigin: store.PasswordRandom, OldLogin: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := e.credsFor(bob)
	if !ok {
		t.Fatal("no credentials for bob: want the master user's")
	}
	if c.Password == "Alice-Secret-1" {
		t.Fatalf("bob (ID %d, alice's was %d) logs in to the old server with alice's password", bob.ID, alice.ID)
	}
	if c.MasterUser != "master" || c.Address != bob.Address {
		t.Fatalf("bob's credentials %+v, want the master user's for %s", c, bob.Address)
	}
}
