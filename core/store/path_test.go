package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"mailferry/core/store"
)

// TestOpenPathCharacters opens stores in directories whose names carry
// characters that mean something in a SQLite "file:" URI (a Windows
// %LOCALAPPDATA% may hold any of them but '?'): the database must be the
// file at exactly that path, reopening it must find the data, and no other
// file may appear beside it.
func TestOpenPathCharacters(t *testing.T) {
	store.SQLiteOnly(t)
	for _, name := range []string{
		"John Smith",
		"J#hn",
		"100%",
		"per%20cent",
		"what?",
		"a&b=c;d",
		"ünïcødé ✉",
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, name, "AppData Local", "Mailferry")
			path := filepath.Join(dir, "mailferry.db")
			ctx := context.Background()
			s, err := store.Open(path, nil)
			if err != nil {
				t.Fatalf("Open(%q): %v", path, err)
			}
			if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
				t.Fatalf("CreateDomain: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database not at %q: %v", path, err)
			}
			entries, err := os.ReadDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != name {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("%s holds %q, want only %q", parent, names, name)
			}
			s, err = store.Open(path, nil)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer s.Close()
			if _, err := s.Domain(ctx, "example.test"); err != nil {
				t.Fatalf("domain lost on reopen: %v", err)
			}
		})
	}
}
