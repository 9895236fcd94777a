package main_test

import (
	"encoding/json"
	"os"
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
