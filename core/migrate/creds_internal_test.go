package migrate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// A password the admin set is never kept to log in to the old server with:
// it is not the old server's, and sending it there would give it away.
func TestLoggedInKeepsOnlyOldPasswords(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Store: st, CatchUpInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
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
