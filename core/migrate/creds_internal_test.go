package migrate

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

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
