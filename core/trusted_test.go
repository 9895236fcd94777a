package core_test

import (
	"strings"
	"testing"

	"mailferry/core"
)

// Never an open relay by a slip of the admin's: a trusted network that
// takes in the whole Internet, or a large part of it (0.0.0.0/0, ::/0,
// an IPv4 prefix shorter than /8, an IPv6 one shorter than /7), is refused
// with words that say why; private and own networks are taken.
func TestTrustedNetworksNotTheWorld(t *testing.T) {
	for _, n := range []string{"0.0.0.0/0", "::/0", " 0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/4", "2000::/3", "::ffff:0.0.0.0/0"} {
		err := core.Config{TrustedNetworks: []string{"192.0.2.0/24", n}}.Defaults().Validate()
		if err == nil || !strings.Contains(err.Error(), "trusted_networks") || !strings.Contains(err.Error(), "relay") {
			t.Errorf("trusted_networks %q: %v, want it refused as an open relay", n, err)
		}
	}
	for _, n := range []string{"10.0.0.0/8", "192.0.2.0/24", "127.0.0.1/32", "fc00::/7", "2001:db8::/32", "2001:db8::1/128", "192.0.2.7/24"} {
		if err := (core.Config{TrustedNetworks: []string{n}}.Defaults().Validate()); err != nil {
			t.Errorf("trusted_networks %q: %v", n, err)
		}
	}
	if err := (core.Config{TrustedNetworks: []string{"10.0.0.0/33"}}.Defaults().Validate()); err == nil {
		t.Error("trusted_networks 10.0.0.0/33 was taken")
	}
}
