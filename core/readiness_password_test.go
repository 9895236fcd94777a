package core_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"mailferry/core"
	"mailferry/core/store"
	"mailferry/core/testkit"
)

// A domain is not ready while some of its accounts open with no password
// of their user but through the old server: a bulk copy's account nobody
// logged in to (a random password), or a first login whose hash was never
// stored. Turned off then, those users could not log in at all.
func TestReadinessAccountsWithoutPassword(t *testing.T) {
	z := testkit.StartZone(t)
	co, err := core.Open(core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.Addr,
		IMAPListen: core.Off, IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionListen: core.Off, SubmissionTLSListen: core.Off,
		POP3Listen: core.Off, POP3SListen: core.Off})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	const domain = "example.test"
	if err := co.EnableMigration(ctx, domain, core.DefaultOldServer(core.MustParseHost("[192.0.2.7]")).WithDefaults()); err != nil {
		t.Fatal(err)
	}
	st := core.StoreOf(co)
	mk := func(addr, origin string, later bool) *store.Account {
		a, err := st.CreateAccount(ctx, addr, "Some-Secret-1", &store.AccountOptions{Migration: store.MigDone,
			OldLogin: addr, PasswordOrigin: origin, HashLater: later})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	bulk := mk("bulk@example.test", store.PasswordRandom, false)
	crashed := mk("crashed@example.test", store.PasswordOld, true)
	mk("fine@example.test", store.PasswordOld, false)
	if _, err := co.ImportKnownUsers(ctx, domain, strings.NewReader("bulk\ncrashed\nfine\n")); err != nil {
		t.Fatal(err)
	}
	r, err := co.Readiness(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.NoPassword, []string{bulk.Address, crashed.Address}) || r.Verdict() != core.VerdictNotReady ||
		!strings.Contains(r.Text(), "no password here yet") {
		t.Fatalf("no password %v, verdict %s: %s", r.NoPassword, r.Verdict(), r.Text())
	}
	if _, err := co.DisableMigration(ctx, domain, false); err == nil {
		t.Fatal("migration turned off while two users have no password")
	}
	// Their users log in once (the old server's yes): they are ready.
	if err := st.NoteLogin(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishPassword(ctx, crashed, "Crashed-Old-1"); err != nil {
		t.Fatal(err)
	}
	if r, err = co.Readiness(ctx, domain); err != nil || len(r.NoPassword) != 0 {
		t.Fatalf("after their logins: %v, %v", r.NoPassword, err)
	}
}
