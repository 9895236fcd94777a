package imapfront

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCoalescingConn(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &coalescingConn{Conn: a, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// Small writes are sent together, at the latest after flushDelay.
	for _, s := range []string{"* 1 EXISTS\r\n", "* 2 EXISTS\r\n"} {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := io.ReadAtLeast(b, buf, 24)
	if err != nil || string(buf[:n]) != "* 1 EXISTS\r\n* 2 EXISTS\r\n" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	// A write larger than the buffer goes out whole.
	big := strings.Repeat("x", coalesceSize+10)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte(big))
		done <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != big {
		t.Fatalf("big write: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close sends what is pending.
	c.Write([]byte("* BYE\r\n"))
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	n, err = io.ReadAtLeast(b, buf, 7)
	if err != nil || string(buf[:n]) != "* BYE\r\n" {
		t.Fatalf("after Close: %q, %v", buf[:n], err)
	}
	// The BYE may have left by the timer before Close took the lock: wait
	// for Close to return before asking whether a write still gets through.
	<-closed
	if _, err := c.Write([]byte("late")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

// TestCoalescingCloseStuckPeer: Close returns soon even when a flush is
// blocked on a peer that never reads.
func TestCoalescingCloseStuckPeer(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &coalescingConn{Conn: a, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c.Write([]byte("* 1 EXISTS\r\n")) // the timer's flush blocks: nobody reads
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
}
