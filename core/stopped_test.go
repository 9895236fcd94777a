//go:build mailferry_testhash

package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core"
	"mailferry/core/store"
)

// TestStoreStoppedFailsCore: a failed fsync of the store's SQLite log
// stops the store (store.ErrStopped) and fails the Core (Failed, Err), so
// that serve exits non-zero and is started again, recovering from the log
// on disk, as PostgreSQL stops after a failed fsync. (The failure is
// injected with the test tag: store.FailLogFsyncs.)
func TestStoreStoppedFailsCore(t *testing.T) {
	co, logs := supervisedCore(t, nil)
	st := core.StoreOf(co)
	ctx := context.Background()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddAccount(ctx, "u@example.test", "Secret-1"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u@example.test")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	disk := errors.New("injected fsync error")
	store.FailLogFsyncs(st, disk)
	if _, err := st.AppendMessage(ctx, mb.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nx\r\n")}); !errors.Is(err, store.ErrStopped) {
		t.Fatalf("APPEND with a failing fsync: %v, want ErrStopped", err)
	}
	select {
	case <-co.Failed():
	case <-time.After(15 * time.Second):
		t.Fatalf("Core did not fail\nlog:\n%s", logs)
	}
	if err := co.Err(); !errors.Is(err, store.ErrStopped) || !errors.Is(err, disk) {
		t.Errorf("Err = %v, want ErrStopped with the disk's error", err)
	}
	if !strings.Contains(logs.String(), "service failed for good") {
		t.Errorf("log does not say so:\n%s", logs)
	}
}
