package migrate

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// A connection kept for a copy that does not start in time (its job waits
// for a free slot, or fails before copying) is closed once it is too old to
// be used, not held open on the old server until the engine closes.
func TestKeptConnClosedWhenTooOld(t *testing.T) {
	defer func(d time.Duration) { keptConnMaxAge = d }(keptConnMaxAge)
	keptConnMaxAge = 50 * time.Millisecond
	cc, sc := net.Pipe()
	defer sc.Close()
	go io.Copy(io.Discard, sc)
	c := imapclient.New(cc, nil)
	defer c.Close()
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil)), kept: map[int64]keptConn{}}
	cred := Credentials{Address: "a@example.test", Password: "x"}
	e.keepConn(1, cred, c, nil)
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("a kept connection past its age is still open")
	}
	e.mu.Lock()
	n := len(e.kept)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("%d connections still kept", n)
	}
	if c, _, _ := e.takeConn(1, cred); c != nil {
		t.Error("took a connection past its age")
	}
}
