package imapfront_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

// panicCatcher is a slog handler that remembers error records mentioning a
// panic (go-imap and imapfront log recovered panics that way).
type panicCatcher struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && strings.Contains(r.Message, "panic") {
		p.mu.Lock()
		p.panics = append(p.panics, r.Message)
		p.mu.Unlock()
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

func (p *panicCatcher) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.panics
	p.panics = nil
	return out
}

// fuzzClient keeps one logged-in connection with INBOX selected, and makes
// a new one when a command ended the last.
type fuzzClient struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	n    int
}

func (fc *fuzzClient) readUntil(tag string, d time.Duration) bool {
	fc.c.SetReadDeadline(time.Now().Add(d))
	for {
		l, err := fc.r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(l, tag+" ") {
			return true
		}
	}
}

func (fc *fuzzClient) ensure(tb testing.TB) {
	if fc.c != nil {
		return
	}
	c, err := net.Dial("tcp", fc.addr)
	if err != nil {
		tb.Fatal(err)
	}
	fc.c, fc.r = c, bufio.NewReader(c)
	fmt.Fprintf(c, "L LOGIN %s %s\r\nS SELECT INBOX\r\n", user, pass)
	if !fc.readUntil("L", 10*time.Second) || !fc.readUntil("S", 10*time.Second) {
		tb.Fatal("fuzz client could not log in")
	}
}

func (fc *fuzzClient) drop() {
	if fc.c != nil {
		fc.c.Close()
		fc.c = nil
	}
}

// FuzzCommand sends arbitrary command lines after login and SELECT: the
// server must not panic, and must stay able to answer.
func FuzzCommand(f *testing.F) {
	pc := &panicCatcher{}
	st, inbox := userStore(f, filepath.Join(f.TempDir(), "mail.db"))
	defer st.Close()
	ctx := context.Background()
	for _, m := range []string{simple, eightBit, multipart, noFinalCRLF} {
		if _, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte(m)}); err != nil {
			f.Fatal(err)
		}
	}
	srv, err := imapfront.New(&imapfront.Options{Store: st, Logger: slog.New(pc), AllowInsecureAuth: true,
		LoginRateLimit: imapfront.LoginRateLimit{Delay: -1, PerUser: 1 << 20, PerIP: 1 << 20}})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	fc := &fuzzClient{addr: ln.Addr().String()}
	defer fc.drop()

	f.Fuzz(func(t *testing.T, line string) {
		fc.ensure(t)
		fc.n++
		// Each input is sent as-is after a tag, then a NOOP that must be
		// answered. A literal the input announces and never sends leaves
		// the server waiting: that only costs the connection.
		tag := fmt.Sprintf("F%d", fc.n)
		fc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(fc.c, tag+" "+line+"\r\n"+tag+"N NOOP\r\n"); err != nil {
			fc.drop()
			return
		}
		if !fc.readUntil(tag+"N", 3*time.Second) {
			fc.drop()
		}
		if p := pc.take(); len(p) > 0 {
			t.Fatalf("server panicked on %q: %s", line, strings.Join(p, "\n"))
		}
	})
}
