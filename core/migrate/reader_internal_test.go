package migrate

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// lit is a literal of imapclient's kind for take.
type lit struct {
	*strings.Reader
	n int64
}

func (l lit) Size() int64 { return l.n }

func newLit(n int) lit {
	return lit{strings.NewReader(strings.Repeat("x", n)), int64(n)}
}

// The bodies imapclient's reading goroutine reads (take, through reading)
// are bounded as the FETCH loop's were: a body not asked for, or asked for
// again, or over the size limit takes no buffer; at most readerBufs bodies
// up to keepBuf and as many larger ones are held at once, and a read
// waiting for one gives up when the copy ends (close), where it would hold
// the connection's reading goroutine, and so the copy's end, for good.
func TestReaderTakeBounded(t *testing.T) {
	r := newReader(nil, slog.New(slog.DiscardHandler), 10<<20)
	read := r.reading(map[uint32]bool{7: true, 8: true})
	take := func(uid uint32, n int) body {
		t.Helper()
		v, err := read(imap.UID(uid), newLit(n))
		if err != nil {
			t.Fatalf("UID %d: %v", uid, err)
		}
		return v.(body)
	}
	if b := take(9, 10); b.read || b.tooBig {
		t.Fatalf("a UID not asked for: %+v", b)
	}
	if b := take(7, 11<<20); !b.tooBig || b.read {
		t.Fatalf("over the limit: %+v", b)
	}
	held := []body{take(7, 100)}
	if string(held[0].b) != strings.Repeat("x", 100) || !held[0].pooled {
		t.Fatalf("UID 7: %d bytes, pooled %v", len(held[0].b), held[0].pooled)
	}
	if b := take(7, 100); b.read {
		t.Fatal("UID 7 read twice")
	}
	if b := take(8, 50); !b.read {
		t.Fatal("UID 8 not read")
	} else {
		held = append(held, b)
	}
	// The pool: readerBufs bodies at most, two held already.
	for range readerBufs - 2 {
		held = append(held, take(0, 50)) // UID not known yet: read
	}
	big := keepBuf + 1
	for range readerBufs {
		b := take(0, big)
		if b.pooled || len(b.b) != big {
			t.Fatalf("a large body: pooled %v, %d bytes", b.pooled, len(b.b))
		}
		held = append(held, b)
	}
	for i, n := range []int{50, big} {
		got := make(chan error, 1)
		l := newLit(n)
		go func() {
			_, err := r.take(0, l, nil)
			got <- err
		}()
		select {
		case err := <-got:
			t.Fatalf("a body of %d bytes read while %d are held: %v", n, len(held), err)
		case <-time.After(300 * time.Millisecond):
		}
		r.release(held[i*readerBufs]) // a small one's buffer, then a large one's token
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("a body of %d bytes not read once a buffer was free", n)
		}
	}
	// All held again; the copy ends: a read waiting gives up.
	got := make(chan error, 1)
	go func() {
		_, err := r.take(0, newLit(50), nil)
		got <- err
	}()
	r.close()
	select {
	case err := <-got:
		if !errors.Is(err, errReaderClosed) {
			t.Fatalf("take after close: %v, want errReaderClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("take still waits for a buffer after close")
	}
}

// A literal cut short fails take and gives its buffer back.
func TestReaderTakeShortLiteral(t *testing.T) {
	r := newReader(nil, slog.New(slog.DiscardHandler), 10<<20)
	defer r.close()
	for range 2 * readerBufs {
		_, err := r.take(5, lit{strings.NewReader("short"), 100}, func(uint32) bool { return true })
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("take = %v, want io.ErrUnexpectedEOF", err)
		}
	}
	if len(r.bufs) != readerBufs {
		t.Fatalf("%d buffers in the pool, want %d", len(r.bufs), readerBufs)
	}
}

// An empty body (a literal of size 0) is a body, read and staged as any
// other, also from a buffer of the pool not used yet (nil).
func TestReaderTakeEmptyBody(t *testing.T) {
	r := newReader(nil, slog.New(slog.DiscardHandler), 10<<20)
	defer r.close()
	v, err := r.reading(map[uint32]bool{3: true})(3, newLit(0))
	if err != nil {
		t.Fatal(err)
	}
	if b := v.(body); !b.read || len(b.b) != 0 {
		t.Fatalf("empty body: %+v, want read", b)
	} else {
		r.release(b)
	}
}
