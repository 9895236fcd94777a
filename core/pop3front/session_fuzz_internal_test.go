package pop3front

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// panicLog fails the fuzz run when a session logs a panic (handle
// recovers it, so that one connection's panic never takes the server
// down; the fuzz target must still see it).
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.mu.Lock()
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		p.panics = append(p.panics, b.String())
		p.mu.Unlock()
	}
	return nil
}
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicLog) WithGroup(string) slog.Handler      { return p }

// FuzzSession feeds any bytes to a session, logged in or not, and checks
// that it never panics, answers every line, and changes nothing without
// QUIT after DELE.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nSTAT\r\n", "USER alice@example.test\r\nPASS x\r\n", "RETR 1\r\nTOP 1 0\r\nDELE 1\r\nRSET\r\n",
		"LIST\r\nUIDL\r\nUIDL 1\r\nLIST 99\r\n", "AUTH PLAIN\r\n*\r\n", "AUTH PLAIN =\r\n", "\x00\xff\r\n\n\n",
		strings.Repeat("A", 3000) + "\r\nNOOP\r\n", "TOP 1 99999999999999999999\r\n", "STLS\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	dir := f.TempDir()
	st, err := store.Open(filepath.Join(dir, "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler), MaxHashes: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.CreateDomain(ctx, "example.test")
	acct, err := st.CreateAccount(ctx, "alice@example.test", "pw-123456", nil)
	if err != nil {
		f.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	for _, b := range []string{"Subject: a\r\n\r\n.x\r\n", "no header at all", ""} {
		if _, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte(b)}); err != nil {
			f.Fatal(err)
		}
	}
	pl := &panicLog{}
	pol, _ := auth.New(auth.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Delay: -1, PerSource: 1 << 30, PerAccount: 1 << 30, PerNetwork: 1 << 30})
	srv, _ := New(&Options{Store: st, Auth: pol, Logger: slog.New(pl), AllowInsecureAuth: true, Idle: 5 * time.Second})
	defer srv.Close()
	before, _ := st.Messages(ctx, inbox.ID)
	f.Fuzz(func(t *testing.T, in []byte, login bool) {
		cli, sc := net.Pipe()
		defer cli.Close()
		srv.wg.Add(1)
		sess := &session{srv: srv, conn: sc}
		if login {
			// logged in already: the transaction state, without a hash
			holder := newHolder()
			if err := st.LockMaildrop(ctx, acct.ID, holder, srv.lockTTL); err != nil {
				t.Skip("maildrop held")
			}
			d, err := openMaildrop(ctx, ctx, st, acct)
			if err != nil {
				t.Fatal(err)
			}
			sess.drop, sess.holder, sess.acct = d, holder, acct.ID
			sess.renew = sess.keepLock(acct.Address)
		}
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			defer srv.wg.Done()
			defer func() {
				if v := recover(); v != nil {
					pl.Handle(ctx, slog.NewRecord(time.Now(), slog.LevelError, "panic", 0))
				}
				sess.release()
				sess.conn.Close()
			}()
			sess.run()
		}()
		// Drop QUIT: a session must change nothing without it.
		in = bytes.ReplaceAll(bytes.ToUpper(in), []byte("QUIT"), []byte("NOOP"))
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, cli); close(done) }()
		cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
		cli.Write(in)
		cli.Write([]byte("\r\n"))
		cli.Close()
		<-done
		<-ended
		pl.mu.Lock()
		defer pl.mu.Unlock()
		if len(pl.panics) > 0 {
			t.Fatalf("panic on %q: %v", in, pl.panics)
		}
		after, _ := st.Messages(ctx, inbox.ID)
		if len(after) != len(before) {
			t.Fatalf("%q changed the maildrop without QUIT", in)
		}
	})
}
