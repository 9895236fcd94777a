package relay

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"mailferry/core/auth"
)

// addrIP is a connection's remote IP address (IPv4-mapped ones unmapped).
// Connection and AUTH limits are core/auth's (Options.Auth).
func addrIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// dataStep is what a message being received holds of the data budget at
// least, and the step by which its hold grows.
const dataStep = 64 << 10

// dataBudget bounds the memory of the messages being received (DATA, BDAT)
// by bytes, not by messages: max bytes in all, and perSource messages of one
// source. A message holds what it has allocated to read (its buffer, and as
// much again for the copy it is committed as), at least dataStep, taken as
// it grows. A sender that opens DATA and sends a byte now and then holds a
// step, not a share every other sender needs (before, 16 such messages from
// four addresses took every slot and all other mail was told to try later).
type dataBudget struct {
	max       int64
	perSource int

	mu    sync.Mutex
	total int64
	by    map[netip.Prefix]int
}

func newDataBudget(max int64, perSource int) *dataBudget {
	return &dataBudget{max: max, perSource: perSource, by: map[netip.Prefix]int{}}
}

// dataHold is one message's share of the budget.
type dataHold struct {
	d    *dataBudget
	src  netip.Prefix
	held int64
}

// open starts a message from ip with dataStep held; nil when its source
// has perSource messages open or the budget has no step left.
func (d *dataBudget) open(ip netip.Addr) *dataHold {
	src := auth.Source(ip)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.by[src] >= d.perSource || d.total+dataStep > d.max {
		return nil
	}
	d.total += dataStep
	d.by[src]++
	return &dataHold{d: d, src: src, held: dataStep}
}

// grow makes the hold at least n bytes (in steps); false, holding what it
// held, when the budget has not that much left.
func (h *dataHold) grow(n int64) bool {
	if n <= h.held {
		return true
	}
	n = (n + dataStep - 1) / dataStep * dataStep
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total+n-h.held > d.max {
		return false
	}
	d.total += n - h.held
	h.held = n
	return true
}

// close gives the hold back.
func (h *dataHold) close() {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total -= h.held
	h.held = 0
	if d.by[h.src]--; d.by[h.src] <= 0 {
		delete(d.by, h.src)
	}
}

// readHeld reads a message as io.ReadAll does, each allocation taken from
// h first (twice its size: the buffer and the copy the message is
// committed as), growing the buffer by doubling up to limit (go-smtp's
// reader fails past the SIZE limit). errBusy when the budget is short;
// errDataTooSlow when the transfer outlasts deadline (go-smtp bounds a
// DATA by its read timeout from the DATA line, but each BDAT line renews
// it: one byte a chunk would hold the message for ever).
func readHeld(r io.Reader, h *dataHold, limit int64, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 0, dataStep/2)
	for {
		if len(buf) == cap(buf) {
			c := min(2*int64(cap(buf)), limit+dataStep)
			c = max(c, int64(cap(buf))+512)
			if !h.grow(2 * c) {
				return nil, errBusy
			}
			buf = append(make([]byte, 0, c), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, errDataTooSlow
		}
	}
}
