package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolve fills what was left to discovery: the boot interface and address,
// and the values sections derive from them (DHCP server address and iPXE
// script URL, HTTP public URL, NFS address). Values already set are kept.
func (c *Config) Resolve() error {
	if c.Interface == "" || c.Address == "" {
		ifname, addr, err := bootAddress(c.Interface, c.Address)
		if err != nil {
			return err
		}
		c.Interface, c.Address = ifname, addr.String()
	}
	if c.DHCP.Interface == "" {
		c.DHCP.Interface = c.Interface
	}
	if c.DHCP.ServerIP == "" {
		c.DHCP.ServerIP = c.Address
	}
	if c.HTTP.PublicURL == "" {
		port := "8080"
		if _, p, err := net.SplitHostPort(c.HTTP.Listen); err == nil && p != "" {
			port = p
		}
		c.HTTP.PublicURL = "http://" + net.JoinHostPort(c.Address, port)
	}
	if c.DHCP.ScriptURL == "" && c.HTTP.Enabled {
		c.DHCP.ScriptURL = strings.TrimSuffix(c.HTTP.PublicURL, "/") + "/ipxe?mac=${net0/mac}"
	}
	if c.NFS.Address == "" {
		c.NFS.Address = c.Address
	}
	if c.RA.Interface == "" {
		c.RA.Interface = c.Interface
	}
	return nil
}

// bootAddress finds the interface and IPv4 address to serve on: the given
// ones, or the first non-loopback interface that is up with an IPv4 address.
func bootAddress(ifname, address string) (string, netip.Addr, error) {
	var want netip.Addr
	if address != "" {
		a, err := netip.ParseAddr(address)
		if err != nil || !a.Is4() {
			return "", netip.Addr{}, fmt.Errorf("address %q: want an IPv4 address", address)
		}
		want = a
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifi := range ifs {
		if ifname != "" && ifi.Name != ifname {
			continue
		}
		if ifname == "" && (ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagUp == 0) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP.To4())
			if !ok || !ip.Is4() || ip.IsLoopback() || (want.IsValid() && ip != want) {
				continue
			}
			return ifi.Name, ip, nil
		}
	}
	switch {
	case ifname != "" && want.IsValid():
		return "", netip.Addr{}, fmt.Errorf("interface %s does not have address %s", ifname, want)
	case ifname != "":
		return "", netip.Addr{}, fmt.Errorf("interface %s: no IPv4 address (or no such interface)", ifname)
	case want.IsValid():
		return "", netip.Addr{}, fmt.Errorf("no interface has address %s", want)
	}
	return "", netip.Addr{}, fmt.Errorf("no non-loopback interface with an IPv4 address: set interface and address")
}
