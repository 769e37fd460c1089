package inventory

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DistMulticast: the boot server sends the root image to a multicast group
// in a carousel; nodes repair what they missed over HTTP (bootsvc/dist).
const DistMulticast = "multicast"

// DefaultMulticastPort is the UDP port when a multicast setting names none.
const DefaultMulticastPort = 7074

// Multicast is where and how fast the boot server sends root images to
// nodes in multicast mode. A group may give all three and a node override
// one.
type Multicast struct {
	Group string `yaml:"group,omitempty" json:"group,omitempty"` // IPv4 multicast address, e.g. 239.255.74.1
	Port  int    `yaml:"port,omitempty" json:"port,omitempty"`   // UDP port; default 7074
	// Rate is the sending rate in bits per second of IP packets, e.g.
	// "95mbit": keep it under the slowest receiver link, or every node
	// loses datagrams and repairs them over HTTP.
	Rate string `yaml:"rate,omitempty" json:"rate,omitempty"`
}

// check reports format problems of the fields that are set.
func (m *Multicast) check() error {
	if m == nil {
		return nil
	}
	var errs []error
	if m.Group != "" {
		if _, err := ParseMulticastGroup(m.Group); err != nil {
			errs = append(errs, fmt.Errorf("multicast.group: %w", err))
		}
	}
	if m.Port < 0 || m.Port > 65535 {
		errs = append(errs, fmt.Errorf("multicast.port %d: want 1-65535", m.Port))
	}
	if m.Rate != "" {
		if _, err := ParseRate(m.Rate); err != nil {
			errs = append(errs, fmt.Errorf("multicast.rate: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checkMulticast checks a merged node: multicast mode needs a group and a
// rate, and multicast settings on a node in another mode would do nothing.
func checkMulticast(n Node) error {
	m := n.Multicast
	if n.Distribution != DistMulticast {
		if m != nil && *m != (Multicast{}) {
			return fmt.Errorf("multicast: set, but distribution is %q (want %q or drop the multicast settings)", n.Distribution, DistMulticast)
		}
		return nil
	}
	var errs []error
	if m == nil || m.Group == "" {
		errs = append(errs, errors.New("distribution multicast: multicast.group is required"))
	}
	if m == nil || m.Rate == "" {
		errs = append(errs, errors.New("distribution multicast: multicast.rate is required (e.g. 95mbit, under the slowest link)"))
	}
	if n.Mode == ModeNFS {
		errs = append(errs, errors.New("distribution multicast needs mode live (an NFS root is not copied)"))
	}
	return errors.Join(errs...)
}

func mergeMulticast(dst **Multicast, src *Multicast) {
	if src == nil {
		return
	}
	m := Multicast{}
	if *dst != nil {
		m = **dst
	}
	if src.Group != "" {
		m.Group = src.Group
	}
	if src.Port != 0 {
		m.Port = src.Port
	}
	if src.Rate != "" {
		m.Rate = src.Rate
	}
	*dst = &m
}

// ParseMulticastGroup parses an IPv4 multicast group outside the
// link-local control block 224.0.0.0/24 (routers' protocols live there).
func ParseMulticastGroup(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q: %w", s, err)
	}
	if !a.Is4() || !a.IsMulticast() {
		return a, fmt.Errorf("%s: want an IPv4 multicast address (224.0.0.0/4, e.g. 239.255.74.1)", a)
	}
	if netip.MustParsePrefix("224.0.0.0/24").Contains(a) {
		return a, fmt.Errorf("%s: in 224.0.0.0/24, reserved for local network control", a)
	}
	return a, nil
}

// ParseRate parses a rate in bits per second: a number with a unit of
// bit, kbit, mbit or gbit (decimal, as tc counts), e.g. "95mbit".
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(0)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.mult
			break
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("%q: want a number with bit, kbit, mbit or gbit (e.g. 95mbit)", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: want a positive number with bit, kbit, mbit or gbit", s)
	}
	bps := int64(v * float64(mult))
	if bps < 64_000 || bps > 100e9 {
		return 0, fmt.Errorf("%q: want 64kbit to 100gbit", s)
	}
	return bps, nil
}
