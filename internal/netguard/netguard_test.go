package netguard

import (
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	g := New(false, []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")})
	for addr, allowed := range map[string]bool{
		"93.184.216.34":          true,
		"2606:2800:220:1::1":     true,
		"127.0.0.1":              false,
		"127.9.9.9":              false,
		"::1":                    false,
		"::ffff:127.0.0.1":       false, // IPv4-mapped loopback
		"10.0.0.1":               false,
		"10.1.2.3":               true, // explicitly allowed
		"172.16.5.4":             false,
		"192.168.1.1":            false,
		"169.254.169.254":        false, // cloud metadata
		"100.64.0.1":             false, // CGNAT
		"fd00::1":                false, // ULA
		"fe80::1":                false,
		"0.0.0.0":                false,
		"::":                     false,
		"::ffff:169.254.169.254": false,
	} {
		err := g.Check(netip.MustParseAddr(addr))
		if (err == nil) != allowed {
			t.Errorf("Check(%s) = %v, want allowed=%v", addr, err, allowed)
		}
	}
	if err := New(true, nil).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("allowPrivate refused loopback: %v", err)
	}
	if err := g.DialControl("tcp", "[::ffff:127.0.0.1]:80", nil); err == nil {
		t.Fatal("DialControl let mapped loopback through")
	}
}
