package httpboot

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// CloudInitConfig is the "http.cloud_init" section: how the NoCloud routes
// (/cloud-init/<token>/…) tell which node is asking and what meta-data
// carries by default.
type CloudInitConfig struct {
	// TrustedProxies are the addresses or prefixes (10.0.0.5, 10.0.0.0/24)
	// of reverse proxies whose X-Forwarded-For names the node. From anyone
	// else the header is ignored: a node could name another one in it.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty" json:"trusted_proxies,omitempty"`
	// ClusterName is meta-data's cluster-name unless a layer sets one;
	// default the boot server's host name.
	ClusterName string `yaml:"cluster_name,omitempty" json:"cluster_name,omitempty"`
}

// proxies parses TrustedProxies (validated before).
func (c CloudInitConfig) proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.TrustedProxies {
		if pfx, err := parseProxy(p); err == nil {
			out = append(out, pfx)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validate reports every bad proxy, naming the field and entry.
func (c CloudInitConfig) validate() error {
	var errs []error
	for i, p := range c.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			errs = append(errs, fmt.Errorf("http.cloud_init.trusted_proxies[%d] %q: want an address or a prefix (10.0.0.0/24)", i, p))
		}
	}
	return errors.Join(errs...)
}

// clusterName is ClusterName or the host name.
func (c CloudInitConfig) clusterName() string {
	if c.ClusterName != "" {
		return c.ClusterName
	}
	h, _ := os.Hostname()
	return h
}
