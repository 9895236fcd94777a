package relay

import (
	"net"
	"net/netip"
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
