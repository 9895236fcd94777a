package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A configuration that pairs a new database with another store's bucket
// (a wrong database_url, or s3_* keys copied from another deployment) is
// refused before anything is served: the command exits saying whose the
// bucket is and what to check. Opened, its hourly compaction would have
// deleted the other store's mail (store.ErrWrongBucket).
func TestRefusesAnotherStoresBucket(t *testing.T) {
	first := distributedConfig(t, t.TempDir(), nil)
	if out, stderr, code := mf(t, t.TempDir(), "", "status", "--config", first); code != 0 {
		t.Fatalf("status of the first store: exit %d %s %s", code, out, stderr)
	}
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	// A new database (distributedConfig makes one) on the first's bucket.
	second := distributedConfig(t, t.TempDir(), map[string]any{"s3_bucket": cfg["s3_bucket"]})
	for _, cmd := range [][]string{{"status"}, {"serve"}} {
		out, stderr, code := mf(t, t.TempDir(), "", append(cmd, "--config", second)...)
		if code == 0 || !strings.Contains(stderr, "belongs to another Mailferry store") || !strings.Contains(stderr, "database_url") {
			t.Errorf("%s on another store's bucket: exit %d, %q %q", cmd[0], code, out, stderr)
		}
		t.Logf("%s: exit %d: %s", cmd[0], code, stderr)
	}
}

// A copy of a store's database (here the SQLite file of a store keeping
// its bytes in S3, copied to another data directory: a backup restored
// beside it) used on the store's bucket: `status` of each says that it
// deletes nothing in its bucket and what to do, and `store adopt-bucket`
// on the store's own makes it delete again, keeping the copy's objects.
// Without epochs, nothing told them apart and each one's hourly
// compaction would delete the other's mail.
func TestAdoptBucketAfterCopy(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(distributedConfig(t, dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "database_url") // SQLite: the file is the database to copy
	b, _ = json.Marshal(cfg)
	config := filepath.Join(dir, "sqlite-s3.json")
	if err := os.WriteFile(config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store, copied := t.TempDir(), t.TempDir()
	status := func(data string) string {
		t.Helper()
		out, stderr, code := mf(t, data, "", "status", "--config", config)
		if code != 0 {
			t.Fatalf("status: exit %d %s %s", code, out, stderr)
		}
		return out
	}
	if out := status(store); strings.Contains(out, "deletes nothing") {
		t.Fatalf("a new store's status: %s", out)
	}
	db, err := os.ReadFile(filepath.Join(store, "mailferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(copied, "mailferry.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	status(store) // the store runs on, and leaves epochs the copy does not know
	for _, data := range []string{copied, store} {
		out := status(data)
		if !strings.Contains(out, "WARNING: deletes nothing in its bucket") || !strings.Contains(out, "adopt-bucket") {
			t.Fatalf("status of %s after the copy used the bucket: %s", data, out)
		}
	}
	out, stderr, code := mf(t, store, "", "store", "adopt-bucket", "--config", config)
	if code != 0 || !strings.Contains(out, "bucket adopted") || !strings.Contains(out, "kept:") {
		t.Fatalf("store adopt-bucket: exit %d %q %q", code, out, stderr)
	}
	t.Logf("adopt-bucket: %s", out)
	if out := status(store); strings.Contains(out, "deletes nothing") {
		t.Fatalf("status after the adoption: %s", out)
	}
}
