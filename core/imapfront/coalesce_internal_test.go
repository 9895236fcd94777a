package imapfront

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
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

// countingConn counts the writes and the write deadlines that reach the
// connection.
type countingConn struct {
	net.Conn
	writes, deadlines atomic.Int32
}

func (w *countingConn) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(p)
}

func (w *countingConn) SetWriteDeadline(t time.Time) error {
	w.deadlines.Add(1)
	return w.Conn.SetWriteDeadline(t)
}

// countedCoalescing returns a coalescingConn on one end of a loopback
// connection, what reaches that end counted, and the other end (read
// within 10 s), closed when the test ends.
func countedCoalescing(t *testing.T) (*coalescingConn, *countingConn, net.Conn) {
	a, b := loopbackPair(t)
	cc := &countingConn{Conn: a}
	c := &coalescingConn{Conn: cc, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(func() { c.Close() })
	b.SetDeadline(time.Now().Add(10 * time.Second))
	return c, cc, b
}

// TestCoalescingSlowCommandOneWrite: a command's answer that takes longer
// than flushDelay to produce (as most do under load, waiting for a core)
// leaves in one write when the server reads again, not in one write per
// flushDelay; what is written while the server waits in Read (IDLE
// updates) still leaves without a Read.
func TestCoalescingSlowCommandOneWrite(t *testing.T) {
	c, wc, b := countedCoalescing(t)

	answer := "* 1 FETCH (UID 1)\r\nA1 OK done\r\n"
	c.Write([]byte(answer[:19]))
	time.Sleep(20 * flushDelay)
	c.Write([]byte(answer[19:]))
	read := make(chan string, 2)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(buf[:n])
	}()
	got := make([]byte, len(answer))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != answer {
		t.Fatalf("answer %q, %v", got, err)
	}
	if n := wc.writes.Load(); n != 1 {
		t.Fatalf("the answer left in %d writes, want 1", n)
	}

	// The server waits in Read: an update written meanwhile leaves alone.
	update := "* 2 EXISTS\r\n"
	c.Write([]byte(update))
	got = make([]byte, len(update))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != update {
		t.Fatalf("update while reading: %q, %v", got, err)
	}
	select {
	case r := <-read:
		t.Fatalf("Read returned %q before the client wrote", r)
	default:
	}
	b.Write([]byte("A2 NOOP\r\n"))
	if r := <-read; r != "A2 NOOP\r\n" {
		t.Fatalf("Read: %q", r)
	}
}

// TestCoalescingDeadlines: the write deadlines go-imap sets and clears
// around each response reach the connection once per write that goes
// out, not twice per response; and a deadline still bounds a write to a
// peer that does not read.
func TestCoalescingDeadlines(t *testing.T) {
	c, dc, b := countedCoalescing(t)

	// As go-imap writes a FETCH of 10 messages and its OK.
	var answer strings.Builder
	for i := 1; i <= 11; i++ {
		line := fmt.Sprintf("* %d FETCH (UID %d)\r\n", i, i)
		if i == 11 {
			line = "A1 OK done\r\n"
		}
		answer.WriteString(line)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		c.Write([]byte(line))
		c.SetWriteDeadline(time.Time{})
	}
	go func() {
		buf := make([]byte, 64)
		c.Read(buf)
	}()
	got := make([]byte, answer.Len())
	if _, err := io.ReadFull(b, got); err != nil || string(got) != answer.String() {
		t.Fatalf("answer %q, %v", got, err)
	}
	if n := dc.deadlines.Load(); n != 1 {
		t.Fatalf("%d write deadlines set on the connection for one write, want 1", n)
	}

	// A peer that does not read: a write past the kernel's buffers fails
	// at go-imap's deadline.
	p, q := net.Pipe()
	defer q.Close()
	stuck := &coalescingConn{Conn: p, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer stuck.Close()
	stuck.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := stuck.Write(make([]byte, coalesceSize+1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write to a peer that does not read: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the write took %v", d)
	}
}

// loopbackPair returns the two ends of a loopback TCP connection, closed
// when the test ends: the kernel takes a write whether or not the peer
// reads yet (net.Pipe would block a flush until it does).
func loopbackPair(t *testing.T) (server, client net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}
