package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/internal/atomicfile"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// Inventory is a loaded nodes.yaml with lookup helpers. It is not safe for
// concurrent mutation; Store hands out snapshots that are only read.
type Inventory struct {
	file  File
	byMAC map[string]string     // normalised MAC → node name, rebuilt by validate
	byIP  map[netip.Addr]string // address → node name
}

// Load reads and validates path. A missing file is an empty inventory.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Inventory{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly; errors name path and line.
func Parse(path string, data []byte) (*Inventory, error) {
	inv := &Inventory{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv.file); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		// TypeError lists one "line N: ..." per problem; name the file on each.
		msg = strings.TrimSpace(strings.TrimPrefix(msg, "unmarshal errors:"))
		msg = strings.ReplaceAll(msg, "\n  line ", "\n"+path+":")
		if strings.HasPrefix(msg, "line ") {
			return nil, fmt.Errorf("%s:%s", path, strings.TrimPrefix(msg, "line "))
		}
		return nil, fmt.Errorf("%s: %s", path, msg)
	}
	if err := inv.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// Save writes the inventory atomically.
func (inv *Inventory) Save(path string) error {
	data, err := yaml.Marshal(&inv.file)
	if err != nil {
		return fmt.Errorf("save inventory %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("save inventory %s: %w", path, err)
	}
	return nil
}

func (inv *Inventory) validate() error {
	var errs []error
	macs, ips := map[string]string{}, map[netip.Addr]string{}
	defer func() { inv.byMAC, inv.byIP = macs, ips }()
	for name, g := range inv.file.Groups {
		if g == nil {
			inv.file.Groups[name] = &Group{}
			continue
		}
		if m := g.Mode; m != "" && m != ModeLive && m != ModeNFS {
			errs = append(errs, fmt.Errorf("group %s: mode %q: want live or nfs", name, m))
		}
		if err := checkDistribution(g.Distribution); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", name, err))
		}
		if err := g.Multicast.check(); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", name, err))
		}
	}
	for _, name := range sortedKeys(inv.file.Nodes) {
		n := inv.file.Nodes[name]
		if name == "" || strings.ContainsAny(name, " \t\n[],/") {
			errs = append(errs, fmt.Errorf("node %q: invalid name", name))
		}
		if n == nil {
			n = &Node{}
			inv.file.Nodes[name] = n
		}
		n.Name = name
		for i, m := range n.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s: mac %q: %w", name, m, err))
				continue
			}
			n.MACs[i] = hw.String()
			if o, dup := macs[hw.String()]; dup {
				errs = append(errs, fmt.Errorf("node %s: mac %s already used by %s", name, hw, o))
			}
			macs[hw.String()] = name
		}
		if n.IP != "" {
			ip, err := netip.ParseAddr(n.IP)
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s: ip %q: %w", name, n.IP, err))
			} else if !ip.Is4() {
				errs = append(errs, fmt.Errorf("node %s: ip %s: want an IPv4 address", name, ip))
			} else if o, dup := ips[ip]; dup {
				errs = append(errs, fmt.Errorf("node %s: ip %s already used by %s", name, ip, o))
			} else {
				ips[ip] = name
			}
		}
		for _, g := range n.Groups {
			if _, ok := inv.file.Groups[g]; !ok {
				errs = append(errs, fmt.Errorf("node %s: unknown group %q", name, g))
			}
		}
		if m := n.Mode; m != "" && m != ModeLive && m != ModeNFS {
			errs = append(errs, fmt.Errorf("node %s: mode %q: want live or nfs", name, m))
		}
		if err := checkDistribution(n.Distribution); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		}
		if err := n.Multicast.check(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		} else if err := checkMulticast(inv.merged(n)); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// checkDistribution accepts only the distribution modes that exist.
func checkDistribution(d string) error {
	switch d {
	case "", DistHTTP, DistTree, DistMulticast:
		return nil
	default:
		return fmt.Errorf("distribution %q: want %q, %q or %q", d, DistHTTP, DistTree, DistMulticast)
	}
}

// merged returns n with its groups' settings applied underneath, in order.
func (inv *Inventory) merged(n *Node) Node {
	out := *n
	var s Settings
	for _, g := range n.Groups {
		if grp := inv.file.Groups[g]; grp != nil {
			overlay(&s, grp.Settings)
		}
	}
	overlay(&s, n.Settings)
	out.Settings = s
	return out
}

func overlay(dst *Settings, src Settings) {
	set := func(d *string, v string) {
		if v != "" {
			*d = v
		}
	}
	set(&dst.Image, src.Image)
	if src.Mode != "" {
		dst.Mode = src.Mode
	}
	set(&dst.Cmdline, src.Cmdline)
	set(&dst.Netmask, src.Netmask)
	set(&dst.Gateway, src.Gateway)
	set(&dst.Domain, src.Domain)
	set(&dst.Distribution, src.Distribution)
	set(&dst.Rack, src.Rack)
	set(&dst.Switch, src.Switch)
	mergeMulticast(&dst.Multicast, src.Multicast)
	if src.DNS != nil {
		dst.DNS = src.DNS
	}
	if src.Overlays != nil {
		dst.Overlays = src.Overlays
	}
	if src.SSHKeys != nil {
		dst.SSHKeys = src.SSHKeys
	}
	if src.BMC != nil {
		// Field by field: a group gives user and protocol, the node its address.
		b := BMC{}
		if dst.BMC != nil {
			b = *dst.BMC
		}
		mergeBMC(&b, src.BMC)
		dst.BMC = &b
	}
	if len(src.Vars) > 0 {
		v := map[string]string{}
		for k, x := range dst.Vars {
			v[k] = x
		}
		for k, x := range src.Vars {
			v[k] = x
		}
		dst.Vars = v
	}
}

func mergeBMC(dst, src *BMC) {
	set := func(d *string, v string) {
		if v != "" {
			*d = v
		}
	}
	set(&dst.Address, src.Address)
	set(&dst.Protocol, src.Protocol)
	set(&dst.User, src.User)
	set(&dst.Password, src.Password)
	if src.Insecure {
		dst.Insecure = true
	}
}

// Node returns the named node merged with its groups.
func (inv *Inventory) Node(name string) (Node, bool) {
	n, ok := inv.file.Nodes[name]
	if !ok {
		return Node{}, false
	}
	return inv.merged(n), true
}

// Nodes returns every node, merged, sorted by name.
func (inv *Inventory) Nodes() []Node {
	out := make([]Node, 0, len(inv.file.Nodes))
	for _, n := range inv.file.Nodes {
		out = append(out, inv.merged(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NodeByMAC finds the node owning mac, merged with its groups.
func (inv *Inventory) NodeByMAC(mac net.HardwareAddr) (Node, bool) {
	name, ok := inv.byMAC[mac.String()]
	if !ok {
		return Node{}, false
	}
	return inv.Node(name)
}

// NodeByIP finds the node with address ip, merged with its groups.
func (inv *Inventory) NodeByIP(ip netip.Addr) (Node, bool) {
	name, ok := inv.byIP[ip.Unmap()]
	if !ok {
		return Node{}, false
	}
	return inv.Node(name)
}

// Select expands a hostlist and returns those nodes; unknown names are an error.
func (inv *Inventory) Select(list string) ([]Node, error) {
	names, err := hostlist.Expand(list)
	if err != nil {
		return nil, fmt.Errorf("select %q: %w", list, err)
	}
	var out []Node
	var unknown []string
	for _, name := range names {
		n, ok := inv.Node(name)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		out = append(out, n)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown nodes: %s", hostlist.Compress(unknown))
	}
	return out, nil
}

// Put adds or replaces a node (unmerged settings) and revalidates.
func (inv *Inventory) Put(node Node) error {
	if node.Name == "" {
		return errors.New("put node: empty name")
	}
	if inv.file.Nodes == nil {
		inv.file.Nodes = map[string]*Node{}
	}
	old, had := inv.file.Nodes[node.Name]
	n := node
	n.MACs = append([]string(nil), node.MACs...)
	inv.file.Nodes[node.Name] = &n
	if err := inv.validate(); err != nil {
		if had {
			inv.file.Nodes[node.Name] = old
		} else {
			delete(inv.file.Nodes, node.Name)
		}
		return fmt.Errorf("put node %s: %w", node.Name, err)
	}
	return nil
}

// Remove deletes the named node, if present.
func (inv *Inventory) Remove(name string) {
	delete(inv.file.Nodes, name)
	inv.validate() // only rebuilds the indexes: removing a node cannot make the file invalid
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
