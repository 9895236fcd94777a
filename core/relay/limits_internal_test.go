package relay

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/iotest"
	"time"
)

// readHeld returns the bytes read exactly, whatever the sizes of the
// reads, holds no more than twice what it allocated, and gives it all
// back at close.
func TestReadHeldExact(t *testing.T) {
	d := newDataBudget(1<<30, 4)
	ip := netip.MustParseAddr("192.0.2.1")
	for _, size := range []int{0, 1, dataStep/2 - 1, dataStep / 2, dataStep/2 + 1, dataStep, 3*dataStep + 7, 1 << 20} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(rand.IntN(256))
		}
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader(want),
			"onebyte": iotest.OneByteReader(bytes.NewReader(want)),
			"half":    iotest.HalfReader(bytes.NewReader(want)),
		} {
			h := d.open(ip)
			got, err := readHeld(r, h, 1<<20, time.Now().Add(time.Minute))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%d bytes %s: %d bytes back, %v", size, name, len(got), err)
			}
			if h.held < 2*int64(cap(got)) || h.held > 2*int64(cap(got))+dataStep {
				t.Fatalf("%d bytes %s: holds %d for a buffer of %d", size, name, h.held, cap(got))
			}
			h.close()
			if d.total != 0 || len(d.by) != 0 {
				t.Fatalf("after close: %d bytes, %d sources held", d.total, len(d.by))
			}
		}
	}
}

// A message the budget cannot grow to is refused (errBusy), and what it
// held stays held until close, not more.
func TestReadHeldOverBudget(t *testing.T) {
	d := newDataBudget(4*dataStep, 4)
	h := d.open(netip.MustParseAddr("192.0.2.1"))
	_, err := readHeld(bytes.NewReader(make([]byte, 4*dataStep)), h, 1<<20, time.Now().Add(time.Minute))
	if err != errBusy {
		t.Fatalf("err %v, want errBusy", err)
	}
	if d.total > d.max {
		t.Fatalf("%d held of %d", d.total, d.max)
	}
	h.close()
	if d.total != 0 {
		t.Fatalf("%d held after close", d.total)
	}
}
