package inventory

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMergeSaveLookup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.yaml")
	inv, err := Load(path)
	if err != nil || len(inv.Nodes()) != 0 {
		t.Fatalf("missing file: %v %v", inv, err)
	}
	src := "groups:\n  compute: {image: base, mode: live, domain: c}\nnodes:\n  nid001: {macs: [AA-BB-CC-DD-EE-01], ip: 10.41.0.1, groups: [compute], mode: nfs}\n"
	os.WriteFile(path, []byte(src), 0o644)
	inv, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := inv.NodeByMAC(net.HardwareAddr{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 1})
	if !ok || n.Name != "nid001" || n.Mode != ModeNFS || n.Image != "base" || n.MACs[0] != "aa:bb:cc:dd:ee:01" {
		t.Fatalf("merged node = %+v %v", n, ok)
	}
	if _, ok := inv.NodeByIP(netip.MustParseAddr("10.41.0.1")); !ok {
		t.Fatal("NodeByIP")
	}
	if err := inv.Put(Node{Name: "nid002", MACs: []string{"aa:bb:cc:dd:ee:01"}}); err == nil {
		t.Fatal("duplicate MAC accepted")
	}
	if err := inv.Put(Node{Name: "nid002", IP: "10.41.0.2"}); err != nil {
		t.Fatal(err)
	}
	if err := inv.Save(path); err != nil {
		t.Fatal(err)
	}
	inv, _ = Load(path)
	if _, err := inv.Select("nid[001-003]"); err == nil || !strings.Contains(err.Error(), "nid003") {
		t.Fatalf("Select unknown: %v", err)
	}
	if ns, err := inv.Select("nid[001-002]"); err != nil || len(ns) != 2 {
		t.Fatalf("Select = %v %v", ns, err)
	}
	inv.Remove("nid002")
	if _, ok := inv.Node("nid002"); ok {
		t.Fatal("Remove")
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown field", "nodes:\n  n1:\n    macz: [x]\n", "nodes.yaml:3"},
		{"bad ip", "nodes:\n  n1: {ip: 10.1}\n", "ip \"10.1\""},
		{"unknown group", "nodes:\n  n1: {groups: [g]}\n", "unknown group"},
		{"bad mode", "nodes:\n  n1: {mode: x}\n", "mode \"x\""},
		{"multicast without group", "groups:\n  g: {distribution: multicast, multicast: {rate: 90mbit}}\nnodes:\n  n1: {groups: [g]}\n", "node n1: distribution multicast: multicast.group is required"},
		{"multicast without rate", "nodes:\n  n1: {distribution: multicast, multicast: {group: 239.255.74.1}}\n", "multicast.rate is required"},
		{"multicast unicast group", "groups:\n  g: {multicast: {group: 10.1.2.3}}\n", "group g: multicast.group: 10.1.2.3: want an IPv4 multicast"},
		{"multicast control block", "nodes:\n  n1: {distribution: multicast, multicast: {group: 224.0.0.5, rate: 1mbit}}\n", "reserved for local network control"},
		{"multicast bad rate", "nodes:\n  n1: {distribution: multicast, multicast: {group: 239.1.1.1, rate: fast}}\n", "multicast.rate: \"fast\""},
		{"multicast bad port", "nodes:\n  n1: {distribution: multicast, multicast: {group: 239.1.1.1, rate: 1mbit, port: 70000}}\n", "multicast.port 70000"},
		{"multicast unknown field", "nodes:\n  n1: {distribution: multicast, multicast: {group: 239.1.1.1, rate: 1mbit, fec: 4}}\n", "nodes.yaml:2"},
		{"multicast settings unused", "nodes:\n  n1: {distribution: tree, multicast: {group: 239.1.1.1}}\n", "node n1: multicast: set, but distribution is \"tree\""},
		{"multicast over nfs", "nodes:\n  n1: {mode: nfs, distribution: multicast, multicast: {group: 239.1.1.1, rate: 1mbit}}\n", "needs mode live"},
		{"unknown distribution", "nodes:\n  n1: {distribution: torrent}\n", "node n1: distribution \"torrent\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "nodes.yaml")
			os.WriteFile(p, []byte(tc.src), 0o644)
			if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTreeAndTopologyMerge: distribution tree and the rack/switch labels
// come from the group unless the node sets its own.
func TestTreeAndTopologyMerge(t *testing.T) {
	inv, err := Parse("nodes.yaml", []byte(`groups:
  rack1: {distribution: tree, rack: r1, switch: s1}
nodes:
  n1: {groups: [rack1]}
  n2: {groups: [rack1], rack: r2, distribution: http}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Settings{{Distribution: DistTree, Rack: "r1", Switch: "s1"}, {Distribution: DistHTTP, Rack: "r2", Switch: "s1"}} {
		name := "n1"
		if want.Rack == "r2" {
			name = "n2"
		}
		n, _ := inv.Node(name)
		if n.Distribution != want.Distribution || n.Rack != want.Rack || n.Switch != want.Switch {
			t.Errorf("%s = %s rack %s switch %s, want %+v", name, n.Distribution, n.Rack, n.Switch, want)
		}
	}
}

// TestBMCMergesFieldByField: a group's BMC user and protocol reach a node
// that only gives its BMC address; the node's own fields win.
func TestBMCMergesFieldByField(t *testing.T) {
	inv, err := Parse("nodes.yaml", []byte(`groups:
  compute: {bmc: {user: admin, protocol: ipmi, insecure: true}}
nodes:
  nid001: {groups: [compute], bmc: {address: 10.0.9.1}}
  nid002: {groups: [compute], bmc: {address: 10.0.9.2, protocol: redfish}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		node string
		want BMC
	}{
		{"nid001", BMC{Address: "10.0.9.1", Protocol: "ipmi", User: "admin", Insecure: true}},
		{"nid002", BMC{Address: "10.0.9.2", Protocol: "redfish", User: "admin", Insecure: true}},
	} {
		n, _ := inv.Node(tt.node)
		if n.BMC == nil || *n.BMC != tt.want {
			t.Errorf("%s: BMC %+v, want %+v", tt.node, n.BMC, tt.want)
		}
	}
	// Merging must not write through to the group.
	if g, _ := inv.Group("compute"); g.BMC.Address != "" {
		t.Errorf("group BMC changed: %+v", g.BMC)
	}
}

// TestMulticastMerge: a node inherits its group's multicast settings field
// by field and may override one.
func TestMulticastMerge(t *testing.T) {
	src := "groups:\n  g: {distribution: multicast, multicast: {group: 239.255.74.1, rate: 90mbit}}\n" +
		"nodes:\n  n1: {groups: [g]}\n  n2: {groups: [g], multicast: {port: 7100}}\n"
	inv, err := Parse("nodes.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Multicast{
		"n1": {Group: "239.255.74.1", Rate: "90mbit"},
		"n2": {Group: "239.255.74.1", Port: 7100, Rate: "90mbit"},
	} {
		n, _ := inv.Node(name)
		if n.Multicast == nil || *n.Multicast != want {
			t.Errorf("%s: multicast %+v, want %+v", name, n.Multicast, want)
		}
	}
	if g, _ := inv.Group("g"); g.Multicast.Port != 0 {
		t.Errorf("merging changed the group: %+v", g.Multicast)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"95mbit", 95e6}, {"1.5gbit", 1.5e9}, {"512kbit", 512e3}, {" 100Mbit ", 100e6},
		{"100", 0}, {"mbit", 0}, {"-5mbit", 0}, {"10bit", 0}, {"1000gbit", 0},
	} {
		got, err := ParseRate(tc.in)
		if (tc.want == 0) != (err != nil) || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
