// Package netguard keeps webhook requests away from the networks hookmesh
// itself lives on. It checks the address actually dialled, after DNS, so a
// name cannot resolve (or rebind) to a private address between a check and
// the connection.
package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// blocked are the ranges a webhook may not reach unless private networks
// are allowed: loopback, private, link-local (the cloud metadata address
// 169.254.169.254 among them), CGNAT, multicast, documentation and other
// non-routable ranges.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Guard decides which addresses may be dialled.
type Guard struct {
	allowPrivate bool
	allow        []netip.Prefix
}

// New returns a guard. allowPrivate lets every address through (the local
// stack and tests); allow lists ranges let through anyway.
func New(allowPrivate bool, allow []netip.Prefix) *Guard {
	return &Guard{allowPrivate: allowPrivate, allow: allow}
}

// Check returns an error for an address a webhook may not reach. IPv4
// addresses written in IPv6 form (::ffff:127.0.0.1) are checked as IPv4.
func (g *Guard) Check(addr netip.Addr) error {
	if g.allowPrivate {
		return nil
	}
	addr = addr.Unmap()
	for _, p := range g.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return fmt.Errorf("destination %s is in a private or reserved range (%s); set HOOKMESH_ALLOW_PRIVATE_NETWORKS=true to allow it", addr, p)
		}
	}
	return nil
}

// DialControl is a net.Dialer Control function enforcing the guard on the
// address being connected to.
func (g *Guard) DialControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("destination %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("destination %q is not an IP address", address)
	}
	return g.Check(ip)
}
