package imapfront

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"testing"
	"time"
)

// hangupPair is a hangupConn over the server's end of a TCP connection on
// 127.0.0.1 (a half-close, a reset and deadlines as a client's), and the
// client's end.
func hangupPair(t *testing.T) (*hangupConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h := &hangupConn{Conn: srv}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	t.Cleanup(func() { h.Close(); cli.Close() })
	return h, cli
}

// go-imap sets a read deadline (cmdReadTimeout, 30 s) before it reads a
// command and leaves it while the command runs: a client that gives up
// on a SEARCH that has run longer (as clients do after 60 s or more) has
// hung up all the same, and the watch still sees it.
func TestHangupSeenAfterCommandReadDeadline(t *testing.T) {
	h, cli := hangupPair(t)
	h.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // the command's line was read under it
	ctx := h.watch()
	time.Sleep(300 * time.Millisecond) // the command still runs
	cli.Close()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a hang-up after the read deadline of the running command's line is not seen")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errHungUp) {
		t.Fatalf("cancelled by %v, want errHungUp", cause)
	}
}

// The deadline the server sets is the one its next read meets, whatever
// the watch did meanwhile: set before the watch, or during it.
func TestHangupWatchKeepsServerReadDeadline(t *testing.T) {
	h, cli := hangupPair(t)
	buf := make([]byte, 64)
	for _, during := range []bool{false, true} {
		watches := hangupWatches.Load()
		if !during {
			h.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		h.watch()
		for hangupWatches.Load() == watches {
			time.Sleep(time.Millisecond)
		}
		if during {
			h.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		start := time.Now()
		n, err := h.Read(buf)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 {
			t.Fatalf("deadline set during the watch %v: read %d, %v, want the deadline", during, n, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("deadline set during the watch %v: read returned after %v", during, d)
		}
		if h.ctx.Err() != nil {
			t.Fatalf("a deadline cancelled the connection's context: %v", context.Cause(h.ctx))
		}
	}
	// The connection goes on once the server sets a later one.
	h.SetReadDeadline(time.Now().Add(5 * time.Second))
	cli.Write([]byte("a NOOP\r\n"))
	if n, err := io.ReadAtLeast(h, buf, 8); err != nil || string(buf[:n]) != "a NOOP\r\n" {
		t.Fatalf("after the deadlines: %q, %v", buf[:n], err)
	}
}

// Whatever the watches read is given to the server's reads, in order,
// once: a client writing 2 MiB in pieces of every size while the server
// alternates commands that are watched and reads of every size; what is
// kept never exceeds aheadMax and a read's 4 KiB.
func TestHangupWatchBytesExact(t *testing.T) {
	h, cli := hangupPair(t)
	want := make([]byte, 2<<20)
	rng := rand.New(rand.NewSource(1))
	rng.Read(want)
	go func() {
		r := rand.New(rand.NewSource(2))
		for off := 0; off < len(want); {
			n := min(len(want)-off, 1+r.Intn(20000))
			if _, err := cli.Write(want[off : off+n]); err != nil {
				return
			}
			off += n
			if r.Intn(4) == 0 {
				time.Sleep(time.Duration(r.Intn(3000)) * time.Microsecond)
			}
		}
		cli.(*net.TCPConn).CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 70000)
	for i := 0; ; i++ {
		if i%3 == 0 {
			h.watch()
			time.Sleep(time.Duration(rng.Intn(15000)) * time.Microsecond)
			h.mu.Lock()
			kept := len(h.ahead)
			h.mu.Unlock()
			if kept > aheadMax+4096 {
				t.Fatalf("%d bytes kept", kept)
			}
		}
		n, err := h.Read(buf[:1+rng.Intn(len(buf)-1)])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, sent %d; equal up to %d", got.Len(), len(want), commonPrefix(got.Bytes(), want))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// A timer that fires late (it fired as Read stopped it, and its watchRead
// ran once the next command had armed a watch again) starts no watch
// over what is already kept: at most aheadMax and one read of 4 KiB wait.
// Called here as that timer would, after a watch that stopped at aheadMax
// (before, it read 4 KiB more; TestHangupWatchBytesExact saw 73,710
// bytes kept once in ten runs with a timing changed).
func TestHangupLateTimerKeepsBound(t *testing.T) {
	h, cli := hangupPair(t)
	go cli.Write(make([]byte, 4*aheadMax))
	h.watch()
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		kept, watching := len(h.ahead), h.watching
		h.mu.Unlock()
		if kept >= aheadMax && !watching {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the watch did not stop at aheadMax: %d kept, watching %v", kept, watching)
		}
	}
	h.mu.Lock()
	kept := len(h.ahead)
	h.mu.Unlock()
	h.watchRead() // the late timer: the watch is still armed
	h.mu.Lock()
	after := len(h.ahead)
	h.mu.Unlock()
	if after != kept {
		t.Fatalf("a late timer read %d bytes more over the %d kept (aheadMax %d)", after-kept, kept, aheadMax)
	}
}
