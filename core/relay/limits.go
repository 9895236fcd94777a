package relay

import (
	"net"
	"net/netip"
	"sync"

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

// dataSlots bounds the messages being received at once, in all and per
// source, so that slow senders holding DATA open cannot fill memory.
type dataSlots struct {
	max, perSource int

	mu    sync.Mutex
	total int
	by    map[netip.Prefix]int
}

func newDataSlots(max, perSource int) *dataSlots {
	return &dataSlots{max: max, perSource: perSource, by: map[netip.Prefix]int{}}
}

// take reserves a slot for a message from ip; false when none is free.
func (d *dataSlots) take(ip netip.Addr) bool {
	src := auth.Source(ip)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total >= d.max || d.by[src] >= d.perSource {
		return false
	}
	d.total++
	d.by[src]++
	return true
}

// give frees a slot take reserved.
func (d *dataSlots) give(ip netip.Addr) {
	src := auth.Source(ip)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total--
	if d.by[src]--; d.by[src] <= 0 {
		delete(d.by, src)
	}
}
