package pop3front

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// TestCloseWaitsForAcceptedSession: a connection accepted (and tracked)
// just before Close has its session waited for; Close used to count the
// session only after track, so its wait could end (and race the count)
// with that session about to run on a closed server.
func TestCloseWaitsForAcceptedSession(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler), MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol, err := auth.New(auth.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(&Options{Store: st, Auth: pol, Logger: slog.New(slog.DiscardHandler), AllowInsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	tracked, release := make(chan struct{}), make(chan struct{})
	afterTrack = func() {
		close(tracked)
		<-release
	}
	defer func() { afterTrack = nil }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-tracked:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not accepted")
	}
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
		close(release)
		t.Fatal("Close returned before the session of an accepted connection ended")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the session could end")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
