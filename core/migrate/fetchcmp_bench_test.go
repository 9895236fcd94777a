package migrate_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/imapfront"
	"mailferry/core/oldserver/oldtest"
)

// BenchmarkFetchEnvelopeVsDovecot20k migrates a 20,000-message INBOX from
// the test Dovecot into a store, serves it with Mailferry's IMAP front end,
// and times the same `UID FETCH 1:* (FLAGS ENVELOPE)` with the same client
// against both servers (best of three, after one warm-up each, so that
// Dovecot's cache index is built), on the same messages.
func BenchmarkFetchEnvelopeVsDovecot20k(b *testing.B) {
	srv := oldtest.Start(b, &oldtest.Options{Fsync: "never"})
	srv.SeedMaildir(b, "bob", "INBOX", 20000, func(i int) int { return 1500 + i%10*200 })
	addr, pass := srv.Address(b, "bob")
	ctx := context.Background()
	st := setupSummarized(b, srv.IMAPAddr)
	e := newEngine(b, st, nil)
	defer e.Close()
	if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
		b.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		b.Fatal(err)
	}
	front, err := imapfront.New(&imapfront.Options{Store: st, Logger: quietLogger(), AllowInsecureAuth: true})
	if err != nil {
		b.Fatal(err)
	}
	defer front.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go front.Serve(ln)

	fetch := func(server string) (time.Duration, int) {
		c, err := imapclient.DialInsecure(server, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(addr, pass).Wait(); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start), len(msgs)
	}
	best := func(server string) time.Duration {
		fetch(server)
		var d time.Duration
		for i := 0; i < 3; i++ {
			t, n := fetch(server)
			if n != 20000 {
				b.Fatalf("%s: fetched %d messages", server, n)
			}
			if d == 0 || t < d {
				d = t
			}
		}
		return d
	}
	b.ResetTimer()
	var dov, mf time.Duration
	for i := 0; i < b.N; i++ {
		dov = best(srv.IMAPAddr)
		mf = best(ln.Addr().String())
	}
	b.ReportMetric(float64(dov.Microseconds())/1000, "dovecot-ms")
	b.ReportMetric(float64(mf.Microseconds())/1000, "mailferry-ms")
	b.ReportMetric(float64(mf)/float64(dov), "x-dovecot")
}
