package store

import (
	"context"
	"path/filepath"
	"testing"
)

// Options.WriterCacheKiB bounds the writer connection's page cache alone:
// the readers and the checkpointer keep sqliteCacheKiB, as every
// connection does without it.
func TestWriterCacheKiB(t *testing.T) {
	if testEngine == EnginePostgres {
		t.Skip("SQLite's page cache")
	}
	for _, c := range []struct{ opt, writer int }{{0, -sqliteCacheKiB}, {2000, -2000}} {
		s, err := Open(filepath.Join(t.TempDir(), "mail.db"), &Options{WriterCacheKiB: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		var w, r, ck int
		ctx := context.Background()
		if err := s.w.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&w); err != nil {
			t.Fatal(err)
		}
		if err := s.r.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&r); err != nil {
			t.Fatal(err)
		}
		if err := s.ckpt.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&ck); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if w != c.writer || r != -sqliteCacheKiB || ck != -sqliteCacheKiB {
			t.Errorf("WriterCacheKiB %d: cache_size writer %d, readers %d, checkpointer %d; want %d, %d, %d",
				c.opt, w, r, ck, c.writer, -sqliteCacheKiB, -sqliteCacheKiB)
		}
	}
}
