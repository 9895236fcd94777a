package core_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"mailferry/core"
)

// No hard-coded outcome: state, counts and progress are what happened.

// startCore starts a Core on loopback with IMAP only.
func startCore(t *testing.T) *core.Core {
	t.Helper()
	co, err := core.Open(core.Config{
		DataDir:             t.TempDir(),
		Hostname:            "mail.test",
		IMAPListen:          "127.0.0.1:0",
		IMAPSListen:         core.Off,
		SMTPListen:          core.Off,
		SubmissionListen:    core.Off,
		SubmissionTLSListen: core.Off,
		POP3Listen:          core.Off,
		POP3SListen:         core.Off,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	return co
}

// A test account that exists on Mailferry as a native account (never
// migrated) is not taken for migrated: its empty migration state is not
// "done". (It was, and the test then waited for mail that never comes.)
func TestMigrateTestAccountNativeIsNotDone(t *testing.T) {
	co := startCore(t)
	ctx := t.Context()
	srv, err := co.StartDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	user := srv.Users()[0]
	if _, err := co.AddDomain(ctx, srv.Domain()); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddAccount(ctx, user.Address, user.Password); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p, err := co.MigrateTestAccount(wctx, core.DemoSettings(srv), user.Address, user.Password, nil)
	if !errors.Is(err, core.ErrNotMigrated) {
		t.Fatalf("MigrateTestAccount of a native account: %v (progress %+v), want ErrNotMigrated", err, p)
	}
	if p.Done() {
		t.Errorf("progress of a native account says done: %+v", p)
	}
}

// The status counts a native account apart, not as moved, and an error the
// store recorded is shown without a made-up count.
func TestStatusCountsWhatHappened(t *testing.T) {
	co := startCore(t)
	ctx := t.Context()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddAccount(ctx, "native@example.test", "Secret-1"); err != nil {
		t.Fatal(err)
	}
	failed, err := co.AddAccount(ctx, "failed@example.test", "Secret-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := core.StoreOf(co).SetAccountMigration(ctx, failed.ID, core.MigFailed, "old server: connection refused"); err != nil {
		t.Fatal(err)
	}
	st, err := co.Status(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Domains) != 1 {
		t.Fatalf("domains %+v", st.Domains)
	}
	d := st.Domains[0]
	if d.Moved != 0 || d.Native != 1 || st.Failed != 1 || len(d.Accounts) != 2 {
		t.Errorf("moved %d native %d failed %d accounts %d, want 0 1 1 2", d.Moved, d.Native, st.Failed, len(d.Accounts))
	}
	for _, u := range st.Users() {
		if u.Address != "failed@example.test" {
			continue
		}
		if u.Errors != 0 || u.LastError != "old server: connection refused" {
			t.Errorf("failed account: errors %d, last %q; want no count (the engine of this process saw none) and the recorded error", u.Errors, u.LastError)
		}
	}
}

// PreMigrate reports the users finished as the results say: a bulk copy
// that did not run reports none finished (it reported all).
func TestPreMigrateProgressIsWhatHappened(t *testing.T) {
	co := startCore(t)
	ctx := t.Context()
	if _, err := co.AddDomain(ctx, "plain.test"); err != nil {
		t.Fatal(err)
	}
	users := []core.Credentials{{Address: "a@plain.test", Password: "x"}, {Address: "b@plain.test", Password: "y"}}
	var calls [][2]int
	_, err := co.PreMigrate(ctx, "plain.test", users, "", "", func(done, total int) {
		calls = append(calls, [2]int{done, total})
	})
	if !errors.Is(err, core.ErrNotMigrating) {
		t.Fatalf("PreMigrate on a domain not migrating: %v", err)
	}
	for _, c := range calls {
		if c[0] != 0 {
			t.Errorf("progress %d of %d, but no user was copied", c[0], c[1])
		}
	}
}
