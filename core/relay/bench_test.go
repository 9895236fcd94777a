package relay_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
)

// sink is a fast SMTP server that counts and discards messages.
type sink struct {
	addr string
	n    atomic.Int64
}

func startSink(b testing.TB) *sink {
	s := &sink{}
	ln := listen(b)
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s}, nil }))
	srv.Domain = "sink.test"
	srv.ErrorLog = nopLog{}
	go srv.Serve(ln)
	b.Cleanup(func() { ln.Close(); srv.Close() })
	return s
}

type sinkSession struct{ s *sink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.n.Add(1)
	return nil
}

// sendMany sends n messages to rcpt over conns parallel connections.
func sendMany(b *testing.B, addr, rcpt string, n, conns int, body []byte) {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := c; i < n; i += conns {
				if err := cl.SendMail("sender@elsewhere.test", []string{rcpt}, bytes.NewReader(body)); err != nil {
					errs <- err
					return
				}
			}
			cl.Quit()
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkDeliver delivers 1,000 messages (about 2 KiB) per iteration,
// from 8 SMTP connections: "local" into a migrated user's INBOX (committed
// before each 250), "relayed" to a not-yet-migrated user from a trusted
// network through the queue to a fast local SMTP sink (until the queue is
// empty).
func BenchmarkDeliver(b *testing.B) {
	const perIter = 1000
	body := message("bench", string(bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 30)))

	b.Run("local", func(b *testing.B) {
		sk := startSink(b)
		e := newEnv(b, sk.addr)
		rr := startRelay(b, e.st, relay.Options{MaxDataPerSource: 8}) // 8 connections of one address
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			sendMany(b, rr.smtpAddr, alice, perIter, 8, body)
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(perIter*b.N)/el.Seconds(), "msgs/s")
		if got := rr.r.Stats().Delivered; got != uint64(perIter*b.N) {
			b.Fatalf("delivered %d, want %d", got, perIter*b.N)
		}
	})

	b.Run("relayed", func(b *testing.B) {
		sk := startSink(b)
		e := newEnv(b, sk.addr)
		rr := startRelay(b, e.st, relay.Options{Workers: 8, TrustedNetworks: trustLoopback, MaxDataPerSource: 8})
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			want := int64(perIter * (i + 1))
			sendMany(b, rr.smtpAddr, bob, perIter, 8, body)
			for sk.n.Load() < want {
				time.Sleep(time.Millisecond)
			}
			for {
				q, err := e.st.Queue(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(q) == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(perIter*b.N)/el.Seconds(), "msgs/s")
		if got := sk.n.Load(); got != int64(perIter*b.N) {
			b.Fatalf("sink got %d, want %d", got, perIter*b.N)
		}
	})
}
