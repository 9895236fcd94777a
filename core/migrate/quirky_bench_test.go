package migrate_test

import (
	"context"
	"testing"
	"time"

	"mailferry/core/demo"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// BenchmarkFirstLoginBareNames: an old server that wants bare user names
// and refuses a full address after 5 s (core/demo BareLoginOnly,
// LoginFailDelay). It prints the first login of a domain's first user
// (nothing learnt: the full address is tried first), then a first login
// once one user has logged in, and one once the server has been probed
// (the assistant's connection test, recorded).
func BenchmarkFirstLoginBareNames(b *testing.B) {
	const delay = 5 * time.Second
	ctx := context.Background()
	var unlearnt, afterLogin, afterProbe time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := startDemoOld(b, demo.Options{BareLoginOnly: true, LoginFailDelay: delay})
		st := demoSetup(b, srv, oldserver.LoginAuto, "example.test")
		e := newEngine(b, st, nil)
		b.StartTimer()
		unlearnt = firstLoginTime(b, e, "bob@example.test", demoPassword(b, srv, "bob@example.test"))
		afterLogin = firstLoginTime(b, e, "carol@example.test", demoPassword(b, srv, "carol@example.test"))
		b.StopTimer()

		st2 := demoSetup(b, srv, oldserver.LoginAuto, "example.test")
		s, _, err := migrate.DomainSettings(ctx, st2, "example.test")
		if err != nil {
			b.Fatal(err)
		}
		res, _ := oldserver.Probe(ctx, *s, "bob@example.test", demoPassword(b, srv, "bob@example.test"))
		if res == nil || res.IMAP.Learnt == nil {
			b.Fatalf("probe: %+v", res)
		}
		if err := migrate.Learn(ctx, st2, "example.test", res.IMAP.Learnt); err != nil {
			b.Fatal(err)
		}
		e2 := newEngine(b, st2, nil)
		b.StartTimer()
		afterProbe = firstLoginTime(b, e2, "alice@example.test", demoPassword(b, srv, "alice@example.test"))
		b.StopTimer()
		e.Close()
		e2.Close()
		b.StartTimer()
	}
	b.ReportMetric(unlearnt.Seconds(), "s-unlearnt")
	b.ReportMetric(afterLogin.Seconds(), "s-after-a-login")
	b.ReportMetric(afterProbe.Seconds(), "s-after-the-probe")
	b.Logf("first login, server wanting bare names and refusing others after %v: nothing learnt %v; once one user logged in %v; once probed %v",
		delay, unlearnt.Round(time.Millisecond), afterLogin.Round(time.Millisecond), afterProbe.Round(time.Millisecond))
	if afterLogin >= time.Second || afterProbe >= time.Second {
		b.Errorf("a first login with the form learnt took %v / %v, want under 1 s", afterLogin, afterProbe)
	}
}

// BenchmarkCopyCapped2: the copy of a 5-folder, 2,000-message mailbox
// (4 connections per account allowed) from an old server capped at 2
// connections from this address while the user's own client holds one;
// the same copy uncapped for comparison.
func BenchmarkCopyCapped2(b *testing.B) {
	const folders, per, size = 5, 400, 4000
	copyOnce := func(capped bool) time.Duration {
		opts := demo.Options{}
		if capped {
			opts.MaxConnsPerIP = 2
		}
		srv := startDemoOld(b, opts)
		addr := "bob@example.test"
		pass := demoPassword(b, srv, addr)
		seeder := demoClient(b, srv, addr, pass)
		seedDemo(b, seeder, []string{"INBOX", "A", "B", "C", "D"}, per, size)
		seeder.Logout().Wait()
		seeder.Close()
		demoClient(b, srv, addr, pass) // the user's own client, held open
		st := demoSetup(b, srv, oldserver.LoginFull, "")
		e := newEngine(b, st, &migrate.Options{ConnsPerAccount: 4})
		defer e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.StartTimer()
		start := time.Now()
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			b.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			b.Fatalf("copy (capped %v): %v", capped, err)
		}
		d := time.Since(start)
		b.StopTimer()
		if n := countMessages(b, st, addr); n != folders*per {
			b.Fatalf("%d messages copied, want %d", n, folders*per)
		}
		if a, _ := st.Account(ctx, addr); a.Migration != store.MigDone {
			b.Fatalf("state %q", a.Migration)
		}
		return d
	}
	var capped, free time.Duration
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		capped = copyOnce(true)
		free = copyOnce(false)
	}
	b.ReportMetric(capped.Seconds(), "s-capped")
	b.ReportMetric(free.Seconds(), "s-uncapped")
	b.Logf("copy of %d messages in %d folders, 4 connections allowed: old server capped at 2 with one held by the user's client %v; uncapped %v",
		folders*per, folders, capped.Round(time.Millisecond), free.Round(time.Millisecond))
}
