package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
)

// Unknown-MAC policies.
const (
	PolicyIgnore    = "ignore"    // unknown MACs get no answer
	PolicyDiscovery = "discovery" // unknown MACs get a short pool lease and are recorded
)

// Config is the "dhcp" section of the serve configuration.
type Config struct {
	Enabled   bool   `yaml:"enabled" json:"enabled"`
	Interface string `yaml:"interface,omitempty" json:"interface,omitempty"` // bind to this interface ("" = all; replies then leave by the routing table)
	Port      int    `yaml:"port,omitempty" json:"port,omitempty"`           // UDP port; default 67
	// ServerIP is the server identifier (option 54) and next-server (siaddr);
	// "" takes the interface's first IPv4 address.
	ServerIP  string        `yaml:"server_ip,omitempty" json:"server_ip,omitempty"`
	LeaseTime time.Duration `yaml:"lease_time,omitempty" json:"lease_time,omitempty"` // static leases; default 1h
	// ScriptURL is the boot file handed to iPXE clients: the HTTP boot
	// service's script URL. iPXE expands ${net0/mac} itself.
	ScriptURL string    `yaml:"script_url,omitempty" json:"script_url,omitempty"`
	BootFiles BootFiles `yaml:"boot_files,omitempty" json:"boot_files,omitempty"`
	// Unknown is the policy for MACs not in the inventory: ignore or discovery.
	Unknown        string        `yaml:"unknown,omitempty" json:"unknown,omitempty"`
	DiscoveryLease time.Duration `yaml:"discovery_lease,omitempty" json:"discovery_lease,omitempty"` // default 5m
	// Subnets are the segments served, directly or through relays (giaddr).
	// Empty: the subnet of the server address only.
	Subnets []Subnet `yaml:"subnets,omitempty" json:"subnets,omitempty"`
}

// BootFiles are the TFTP file names PXE firmware gets per client architecture
// (RFC 4578 option 93).
type BootFiles struct {
	BIOS  string `yaml:"bios,omitempty" json:"bios,omitempty"`   // arch 0; default undionly.kpxe
	UEFI  string `yaml:"uefi,omitempty" json:"uefi,omitempty"`   // arch 7, 9 (x86-64 UEFI); default ipxe.efi
	ARM64 string `yaml:"arm64,omitempty" json:"arm64,omitempty"` // arch 11; default snp-arm64.efi
}

// Loaders are the boot files in the resolver's terms.
func (b BootFiles) Loaders() bootspec.Loaders {
	return bootspec.Loaders{BIOS: b.BIOS, UEFI: b.UEFI, ARM64: b.ARM64}
}

// Subnet is one served segment.
type Subnet struct {
	Network string   `yaml:"network" json:"network"`                   // CIDR, e.g. 10.0.0.0/16
	Router  string   `yaml:"router,omitempty" json:"router,omitempty"` // default gateway for nodes without one
	DNS     []string `yaml:"dns,omitempty" json:"dns,omitempty"`
	Domain  string   `yaml:"domain,omitempty" json:"domain,omitempty"`
	Pool    string   `yaml:"pool,omitempty" json:"pool,omitempty"` // discovery range "FIRST-LAST"
}

// Defaults returns the section's defaults (disabled until serve turns it on).
func Defaults() Config {
	return Config{
		Port:           67,
		LeaseTime:      time.Hour,
		ScriptURL:      "",
		BootFiles:      BootFiles{BIOS: "undionly.kpxe", UEFI: "ipxe.efi", ARM64: "snp-arm64.efi"},
		Unknown:        PolicyIgnore,
		DiscoveryLease: 5 * time.Minute,
	}
}

// Validate returns every problem with the section, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Port <= 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("dhcp.port %d: out of range", c.Port))
	}
	if c.ServerIP != "" {
		if a, err := netip.ParseAddr(c.ServerIP); err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("dhcp.server_ip %q: want an IPv4 address", c.ServerIP))
		}
	}
	if c.LeaseTime < time.Minute {
		errs = append(errs, fmt.Errorf("dhcp.lease_time %s: want at least 1m", c.LeaseTime))
	}
	if c.ScriptURL != "" && !strings.HasPrefix(c.ScriptURL, "http://") && !strings.HasPrefix(c.ScriptURL, "https://") {
		errs = append(errs, fmt.Errorf("dhcp.script_url %q: want http://...", c.ScriptURL))
	}
	switch c.Unknown {
	case PolicyIgnore, PolicyDiscovery:
	default:
		errs = append(errs, fmt.Errorf("dhcp.unknown %q: want ignore or discovery", c.Unknown))
	}
	if c.Unknown == PolicyDiscovery && c.DiscoveryLease < 10*time.Second {
		errs = append(errs, fmt.Errorf("dhcp.discovery_lease %s: want at least 10s", c.DiscoveryLease))
	}
	pools := 0
	for i, s := range c.Subnets {
		if _, err := s.parse(); err != nil {
			errs = append(errs, fmt.Errorf("dhcp.subnets[%d]: %w", i, err))
		}
		if s.Pool != "" {
			pools++
		}
	}
	if c.Unknown == PolicyDiscovery && pools == 0 {
		errs = append(errs, errors.New("dhcp.unknown discovery: no subnet has a pool"))
	}
	return errors.Join(errs...)
}

// subnet is a parsed Subnet.
type subnet struct {
	prefix      netip.Prefix
	router      netip.Addr
	dns         []netip.Addr
	domain      string
	first, last netip.Addr // pool; invalid = none
}

func (s Subnet) parse() (*subnet, error) {
	var errs []error
	out := &subnet{domain: s.Domain}
	p, err := netip.ParsePrefix(s.Network)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("network %q: want IPv4 CIDR", s.Network)
	}
	out.prefix = p.Masked()
	if s.Router != "" {
		if out.router, err = netip.ParseAddr(s.Router); err != nil || !out.prefix.Contains(out.router) {
			errs = append(errs, fmt.Errorf("router %q: want an address in %s", s.Router, out.prefix))
		}
	}
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("dns %q: want an IPv4 address", d))
			continue
		}
		out.dns = append(out.dns, a)
	}
	if s.Pool != "" {
		lo, hi, ok := strings.Cut(s.Pool, "-")
		first, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		last, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if !ok || err1 != nil || err2 != nil || !out.prefix.Contains(first) || !out.prefix.Contains(last) || last.Less(first) {
			errs = append(errs, fmt.Errorf("pool %q: want FIRST-LAST inside %s", s.Pool, out.prefix))
		} else {
			out.first, out.last = first, last
		}
	}
	return out, errors.Join(errs...)
}
