package dhcp

import (
	"fmt"
	"net"
	"net/netip"
)

// resolveServerIP is cfg.ServerIP, or the first IPv4 address of cfg.Interface.
func resolveServerIP(cfg Config) (netip.Addr, error) {
	if cfg.ServerIP != "" {
		return netip.MustParseAddr(cfg.ServerIP), nil // Validate checked it
	}
	if cfg.Interface == "" {
		return netip.Addr{}, fmt.Errorf("dhcp: set server_ip or interface")
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: interface %s: %w", cfg.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: interface %s: %w", cfg.Interface, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ip.Is4() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp: interface %s has no IPv4 address", cfg.Interface)
}

// interfaceSubnet finds the network of ip among the host's addresses (of
// iface, if named), for configs that list no subnets.
func interfaceSubnet(iface string, ip netip.Addr) (*subnet, error) {
	var addrs []net.Addr
	var err error
	if iface != "" {
		ifi, e := net.InterfaceByName(iface)
		if e != nil {
			return nil, fmt.Errorf("dhcp: interface %s: %w", iface, e)
		}
		addrs, err = ifi.Addrs()
	} else {
		addrs, err = net.InterfaceAddrs()
	}
	if err != nil {
		return nil, fmt.Errorf("dhcp: addresses: %w", err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if p, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && p == ip {
			ones, _ := ipn.Mask.Size()
			return &subnet{prefix: netip.PrefixFrom(ip, ones).Masked()}, nil
		}
	}
	return nil, fmt.Errorf("dhcp: server address %s is not on this host; list dhcp.subnets", ip)
}
