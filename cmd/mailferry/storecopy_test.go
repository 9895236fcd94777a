package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailferry/core"
)

// `mailferry store copy --to` copies a store into another configuration's
// store (here an embedded one: PostgreSQL + S3 targets are tested in
// core/store), verifies it, copies the DKIM keys, refuses a source in use
// and a target that is not empty, and the target serves the accounts
// afterwards.
func TestStoreCopyCommand(t *testing.T) {
	src := t.TempDir()
	if out, stderr, code := mf(t, src, "", "domain", "add", "example.test"); code != 0 {
		t.Fatalf("domain add: %d %s %s", code, out, stderr)
	}
	if out, stderr, code := mf(t, src, "Alice-pass-1\n", "account", "add", "alice@example.test"); code != 0 {
		t.Fatalf("account add: %d %s %s", code, out, stderr)
	}
	key := filepath.Join(src, "dkim", "example.test", "ed25519.key")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("not really a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "node1")
	cfg := filepath.Join(t.TempDir(), "target.json")
	b, _ := json.Marshal(map[string]string{"data_dir": dst})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// A source open in another process (here this one: a serve) is refused.
	co, err := core.Open(core.Config{DataDir: src})
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := mf(t, src, "", "store", "copy", "--to", cfg)
	co.Close()
	if code != 1 || !strings.Contains(stderr, "stop it first") {
		t.Fatalf("store copy of a store in use: exit %d, %q %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dst, "mailferry.db")); err == nil {
		// Opening the target first would be harmless, but the source is refused before.
		t.Logf("target opened before the source was refused")
	}

	out, stderr, code = mf(t, src, "", "store", "copy", "--to", cfg)
	if code != 0 || !strings.Contains(out, "verify: identical") || !strings.Contains(out, "accounts 1/1") {
		t.Fatalf("store copy: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("%s", out)
	if got, err := os.ReadFile(filepath.Join(dst, "dkim", "example.test", "ed25519.key")); err != nil || string(got) != "not really a key\n" {
		t.Errorf("DKIM key in the target: %q %v", got, err)
	}
	if out, stderr, code := mf(t, dst, "", "account", "list"); code != 0 || !strings.Contains(out, "alice@example.test") {
		t.Fatalf("account list on the target: %d %s %s", code, out, stderr)
	}
	// Again: the target is not empty any more.
	out, stderr, code = mf(t, src, "", "store", "copy", "--to", cfg)
	if code != 1 || !strings.Contains(stderr, "not empty") || !strings.Contains(stderr, "1 accounts") {
		t.Fatalf("store copy into a full target: exit %d, %q %q", code, out, stderr)
	}
	// Usage errors.
	if _, stderr, code := mf(t, src, "", "store", "copy"); code != 2 || !strings.Contains(stderr, "--to") {
		t.Errorf("store copy without --to: %d %q", code, stderr)
	}
	if _, stderr, code := mf(t, src, "", "store", "copy", "--to", filepath.Join(src, "none.json")); code != 2 {
		t.Errorf("store copy --to a missing file: %d %q", code, stderr)
	}
}
