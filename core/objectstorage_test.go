package core_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailferry/core"
	"mailferry/core/store"
)

// The s3_ keys: what goes together is checked before anything is opened,
// the secret is read from its file (never shown), and an object storage
// that is down fails Open in words.
func TestObjectStorageConfig(t *testing.T) {
	no := false
	for _, c := range []struct {
		cfg  core.Config
		want string
	}{
		{core.Config{S3Bucket: "mail"}, "s3_endpoint is missing"},
		{core.Config{S3Endpoint: "s3.example.test", S3Bucket: "mail"}, "want host:port"},
		{core.Config{S3Endpoint: "127.0.0.1:9000"}, "s3_bucket must be"},
		{core.Config{S3Endpoint: "127.0.0.1:9000", S3Bucket: "mail", S3AccessKey: "k"}, "go together"},
		{core.Config{S3TLS: &no}, "s3_endpoint is missing"},
	} {
		err := c.cfg.Defaults().Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}

	dir := t.TempDir()
	secret := "s3cr3t-never-shown"
	file := filepath.Join(dir, "s3.secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	cfg := core.Config{DataDir: filepath.Join(dir, "data"), S3Endpoint: down, S3Bucket: "mail",
		S3AccessKey: "mailferry", S3SecretKeyFile: file, S3TLS: &no}
	co, err := core.Open(cfg)
	if err == nil {
		co.Close()
		t.Fatal("Open with the object storage down succeeded")
	}
	if !errors.Is(err, store.ErrObjectStorage) || !strings.Contains(err.Error(), "nothing listens") || strings.Contains(err.Error(), secret) {
		t.Errorf("object storage down: %v", err)
	}
	cfg.S3SecretKeyFile = filepath.Join(dir, "missing")
	if _, err := core.Open(cfg); err == nil || !strings.Contains(err.Error(), "s3_secret_key_file") {
		t.Errorf("missing secret file: %v", err)
	}
}
