package vmboot

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultBridgeAddr picks the boot service's address in the node's subnet,
// in CIDR form: host .1, or broadcast-1 (.254 in a /24) when the node itself
// is .1. netmask is dotted (255.255.255.0) or a prefix (/24 or 24); "" = /24.
func DefaultBridgeAddr(ip, netmask string) (string, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return "", fmt.Errorf("ip %q: not an IPv4 address", ip)
	}
	bits := 24
	if netmask != "" {
		if bits, err = prefixLen(netmask); err != nil {
			return "", err
		}
	}
	if bits > 30 {
		return "", fmt.Errorf("netmask /%d leaves no room for a boot server beside the node; give a bridge address", bits)
	}
	network := toUint(netip.PrefixFrom(addr, bits).Masked().Addr())
	server := network + 1
	if server == toUint(addr) {
		server = network | ^uint32(0)>>bits - 1 // broadcast - 1
	}
	return fmt.Sprintf("%s/%d", fromUint(server), bits), nil
}

// prefixLen reads a netmask given dotted (255.255.255.0) or as /24 or 24.
func prefixLen(mask string) (int, error) {
	m := strings.TrimPrefix(mask, "/")
	var bits int
	if _, err := fmt.Sscanf(m, "%d", &bits); err == nil && !strings.Contains(m, ".") {
		if bits < 0 || bits > 32 {
			return 0, fmt.Errorf("netmask %q: prefix out of range", mask)
		}
		return bits, nil
	}
	a, err := netip.ParseAddr(m)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("netmask %q: want dotted or /prefix", mask)
	}
	v := toUint(a)
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %q: not contiguous", mask)
	}
	return ones, nil
}

func toUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
