package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

func TestParseUserList(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
		pw       []string
		err      string
	}{
		{"addresses", "alice@example.test\n\nBob@Example.test\n", []string{"alice@example.test", "bob@example.test"}, []string{"", ""}, ""},
		{"passwords and local parts", "user,password\ncarol,secret\n# comment\ndave@example.test,pw,\n", nil, nil, "want user[,password]"},
		{"local part and password", "carol,secret", []string{"carol@example.test"}, []string{"secret"}, ""},
		{"other domain", "eve@evil.test", nil, nil, "not addresses of example.test"},
		{"duplicate", "a@example.test\na@example.test", nil, nil, "already on line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := core.ParseUserList(c.in, "example.test")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(core.Addresses(got), " ") != strings.Join(c.want, " ") {
				t.Errorf("got %v, want %v", core.Addresses(got), c.want)
			}
			for i := range got {
				if got[i].Password != c.pw[i] {
					t.Errorf("%s password %q, want %q", got[i].Address, got[i].Password, c.pw[i])
				}
			}
		})
	}
}

// Readiness never says "can be turned off" without a list of the old
// server's users, nor while a check fails; it says what stands in the way.
func TestReadinessText(t *testing.T) {
	ok := []core.CutoverCheck{{Name: core.CheckRoute, State: core.CheckOK, Text: "proven"}}
	r := &core.Readiness{Domain: "example.test", Checks: ok}
	if r.Ready() || r.Verdict() != core.VerdictUnknown || strings.Contains(r.Text(), "can be turned off") || !strings.Contains(r.Text(), "Unknown") {
		t.Errorf("no list: %v %q", r.Verdict(), r.Text())
	}
	r.UsersListed, r.Listed = true, 3
	if !r.Ready() || !strings.Contains(r.Text(), "can be turned off") || len(r.Facts()) != 0 {
		t.Errorf("listed, all moved: %v %q", r.Verdict(), r.Text())
	}
	r.NeverLoggedIn = []string{"bob@example.test"}
	r.Queued = 2
	if r.Ready() || !strings.Contains(r.Text(), "bob@example.test") || !strings.Contains(r.Text(), "2 messages") {
		t.Errorf("readiness: %v %q", r.Ready(), r.Text())
	}
	r.NeverLoggedIn, r.Queued = nil, 0
	r.Checks = []core.CutoverCheck{{Name: core.CheckRoute, State: core.CheckFail, Text: "not proven"}}
	if r.Ready() || !r.SendingBreaks() || !strings.Contains(strings.Join(r.Facts(), " "), "not proven") {
		t.Errorf("route not proven: %v %q", r.Verdict(), r.Facts())
	}
	r.Checks = append(ok, core.CutoverCheck{Name: core.CheckMX, State: core.CheckUnknown, Text: "DNS did not answer"})
	if r.Verdict() != core.VerdictUnknown || r.SendingBreaks() {
		t.Errorf("DNS unknown: %v", r.Verdict())
	}
}

// Invalid old-server settings change nothing, not even on a new domain.
func TestEnableMigrationInvalidSettingsCreateNothing(t *testing.T) {
	co, err := core.Open(core.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	bad := oldserver.Settings{Host: oldserver.MustParseHost("[192.0.2.7]"), IMAPPort: 0, SMTPPort: 25}
	if err := co.EnableMigration(ctx, "new.test", bad); err == nil {
		t.Fatal("invalid settings accepted")
	}
	if _, err := core.StoreOf(co).Domain(ctx, "new.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("domain after a refused EnableMigration: %v", err)
	}
}

// The default domain the test migration learnt with the admin's own test
// account is kept when the dashboard enables migration for the same old
// server, and not for another one.
func TestEnableMigrationKeepsLearntDefaultDomain(t *testing.T) {
	co, err := core.Open(core.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	set := oldserver.DefaultSettings(oldserver.MustParseHost("[192.0.2.7]")).WithDefaults()
	learnt := set
	learnt.DefaultDomain = "example.test"
	if err := co.EnableMigration(ctx, "example.test", learnt); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want string
	}{{"[192.0.2.7]", "example.test"}, {"[192.0.2.8]", ""}} {
		s := set
		s.Host = oldserver.MustParseHost(tc.host)
		if err := co.EnableMigration(ctx, "example.test", s); err != nil {
			t.Fatal(err)
		}
		got, _, err := co.MigrationSettings(ctx, "example.test")
		if err != nil || got.DefaultDomain != tc.want {
			t.Fatalf("old server %s: default domain %q (%v), want %q", tc.host, got.DefaultDomain, err, tc.want)
		}
		if err := co.EnableMigration(ctx, "example.test", learnt); err != nil {
			t.Fatal(err)
		}
	}
}
