package core_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"mailferry/core"
	"mailferry/core/store"
)

// A store that a copy is still filling is not served: core.Open refuses
// it, naming the source, until the copy was run again to its end.
func TestOpenRefusesUnfinishedStoreCopy(t *testing.T) {
	ctx := context.Background()
	from, to := t.TempDir(), t.TempDir()
	co, err := core.Open(core.Config{DataDir: from})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := co.AddAccount(ctx, a, "Pass-word-1"); err != nil {
			t.Fatal(err)
		}
	}
	co.Close()
	src, err := store.Open(filepath.Join(from, "mailferry.db"), &store.Options{ChangePoll: -1, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := store.Open(filepath.Join(to, "mailferry.db"), &store.Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	_, err = store.Copy(cctx, src, dst, &store.CopyOptions{Progress: func(p store.CopyProgress) {
		if p.Accounts == 1 {
			cancel()
		}
	}})
	dst.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if _, err := core.Open(core.Config{DataDir: to}); !errors.Is(err, core.ErrTargetNotEmpty) || !strings.Contains(err.Error(), "run that copy again") {
		t.Fatalf("open of a half-copied store: %v", err)
	}
	dst, err = store.Open(filepath.Join(to, "mailferry.db"), &store.Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Copy(ctx, src, dst, nil); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	src.Close()
	co, err = core.Open(core.Config{DataDir: to})
	if err != nil {
		t.Fatalf("open after the copy finished: %v", err)
	}
	co.Close()
}
