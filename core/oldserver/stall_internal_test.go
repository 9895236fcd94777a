package oldserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// deadlineConn is a streamConn that also records the read deadlines set
// on it: how many, and the one in force at each Read.
type deadlineConn struct {
	streamConn
	sets     int
	deadline time.Time
	atRead   []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.sets++
	c.deadline = t
	return nil
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.atRead = append(c.atRead, c.deadline)
	return c.streamConn.Read(p)
}

// A copy sets the socket's read deadline once per read of the socket, not
// four times per message as imapclient sets it (the response, its
// literal, back, idle): 200 messages took 800 timer updates in the
// runtime, and each read still has its deadline, stall from its start.
func TestStallDeadlinePerRead(t *testing.T) {
	const stall = 30 * time.Second
	stream, want := fetchStream(200)
	raw := &deadlineConn{streamConn: streamConn{data: stream, err: io.EOF}}
	c := newReadAheadConn(newStallConn(raw, stall))
	// imapclient's pattern around each response (client.go readResponse,
	// fetch.go handleFetch), the reads as readFetches makes them.
	r := &deadlineReader{c: c}
	got := readFetches(t, r, len(want))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d not read back the same", i)
		}
	}
	t.Logf("%d deadlines set by imapclient, %d reads and %d deadlines of the socket", r.sets, raw.reads, raw.sets)
	if r.sets < 4*len(want) {
		t.Fatalf("the pattern set %d deadlines, want at least %d", r.sets, 4*len(want))
	}
	if raw.sets > raw.reads {
		t.Fatalf("%d deadlines set on the socket for %d reads of it: want at most one per read", raw.sets, raw.reads)
	}
	for i, d := range raw.atRead {
		if d.IsZero() {
			continue // read while idle (the peek before a response)
		}
		if left := time.Until(d); left <= stall-10*time.Second || left > stall {
			t.Fatalf("read %d of the socket had %v left of its deadline, want about %v", i, left, stall)
		}
	}
}

// deadlineReader reads c as imapclient's reading goroutine does: a
// deadline for the response (30 s), one for its literal (5 minutes), the
// response's again, and none once it is read.
type deadlineReader struct {
	c    net.Conn
	sets int
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	set := func(d time.Duration) {
		r.sets++
		if d == 0 {
			r.c.SetReadDeadline(time.Time{})
			return
		}
		r.c.SetReadDeadline(time.Now().Add(d))
	}
	// One Read of readFetches' 4 KiB buffer may span responses; the
	// pattern is what matters: four deadlines per response read.
	set(30 * time.Second)
	set(5 * time.Minute)
	set(30 * time.Second)
	n, err := r.c.Read(p)
	set(0)
	return n, err
}

// A deadline set while a Read is under way reaches that Read at once, as
// it did when every deadline went straight to the socket: a read blocked
// while idle (no deadline) ends within the stall once one is set.
func TestStallDeadlineDuringRead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := newStallConn(a, 200*time.Millisecond)
	c.SetReadDeadline(time.Time{}) // idle
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the Read is blocked, without a deadline
	select {
	case err := <-done:
		t.Fatalf("idle read ended: %v", err)
	default:
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read ended with %v, want its deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a deadline set during a blocked read did not reach it")
	}
}

// An armed connection that goes idle: the next read of the socket has no
// deadline (a zero deadline stays zero), and one armed again has one.
func TestStallIdleAfterArmed(t *testing.T) {
	raw := &deadlineConn{streamConn: streamConn{data: []byte("0123456789"), err: io.EOF}}
	c := newStallConn(raw, time.Minute)
	one := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(time.Second))
	c.Read(one)
	c.SetReadDeadline(time.Time{})
	c.Read(one)
	c.Read(one)
	c.SetReadDeadline(time.Now().Add(time.Second))
	c.Read(one)
	if len(raw.atRead) != 4 || raw.atRead[0].IsZero() || !raw.atRead[1].IsZero() || !raw.atRead[2].IsZero() || raw.atRead[3].IsZero() {
		t.Fatalf("deadlines at the reads: %v; want set, none, none, set", raw.atRead)
	}
	if raw.sets != 3 {
		t.Fatalf("%d deadlines set on the socket, want 3 (set, cleared, set)", raw.sets)
	}
}
