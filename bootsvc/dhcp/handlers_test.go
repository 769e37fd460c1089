package dhcp

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

const testNodes = `groups:
  compute: {domain: cluster.test, dns: [10.41.0.53], mode: live}
nodes:
  nid001: {macs: ["02:41:00:00:00:01"], ip: 10.41.0.11, groups: [compute]}
  nid002: {macs: ["02:41:00:00:00:02"], ip: 10.41.2.12, groups: [compute], gateway: 10.41.2.254, netmask: /24}
  nid003: {macs: ["02:41:00:00:00:03"], ip: 10.41.0.13, netmask: 255.255.0.0}
`

// recorder is a StateRecorder that keeps what it was told.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Report(_ context.Context, node string, rep nodestate.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, node+"="+string(rep.State))
	return nil
}

// testServer answers from the in-memory store: no file is read on the way.
func testServer(t testing.TB, mutate func(*Config)) (*Server, *store.Memory, *recorder) {
	t.Helper()
	inv, err := inventory.Parse("nodes.yaml", []byte(testNodes))
	if err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory()
	if err := mem.Import(context.Background(), &store.Dump{Version: store.DumpVersion, Inventory: inv.File()}); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Enabled = true
	cfg.ServerIP = "10.41.0.1"
	cfg.ScriptURL = "http://10.41.0.1:8080/ipxe?mac=${net0/mac}"
	cfg.Subnets = []Subnet{
		{Network: "10.41.0.0/24", Router: "10.41.0.254", Pool: "10.41.0.200-10.41.0.201"},
		{Network: "10.41.2.0/24", Router: "10.41.2.1", Domain: "relay.test"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	rec := &recorder{}
	s, err := New(cfg, Deps{Nodes: mem, Boot: firmwareOnly(cfg), States: rec})
	if err != nil {
		t.Fatal(err)
	}
	return s, mem, rec
}

// firmwareOnly is a resolver that answers boot files only, as DHCP asks.
func firmwareOnly(cfg Config) *bootspec.Resolver {
	return bootspec.New(bootspec.Config{ScriptURL: cfg.ScriptURL, Loaders: cfg.BootFiles.Loaders()}, nil, nil, nil, nil)
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// summary is what a test compares of a reply.
type summary struct {
	Type, YourIP, Dst, File, Mask, Router, Domain, Host, Next string
	NoPXEDHCP                                                 bool
}

func summarize(resp *dhcpv4.DHCPv4, dst net.Addr) summary {
	if resp == nil {
		return summary{}
	}
	s := summary{Type: resp.MessageType().String(), YourIP: resp.YourIPAddr.String(), Dst: dst.String(),
		File: resp.BootFileNameOption(), Domain: resp.DomainName(), Host: resp.HostName(), Next: resp.ServerIPAddr.String()}
	if m := resp.SubnetMask(); m != nil {
		s.Mask = net.IP(m).String()
	}
	if r := resp.Router(); len(r) > 0 {
		s.Router = r[0].String()
	}
	s.NoPXEDHCP = string(resp.GetOneOption(dhcpv4.GenericOptionCode(175))) == "\xb0\x01\x01"
	return s
}

func TestHandle(t *testing.T) {
	uefi := dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))
	for _, tc := range []struct {
		name   string
		mac    string
		typ    dhcpv4.MessageType
		mods   []dhcpv4.Modifier
		policy string
		want   summary
	}{
		{"bios discover", "02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, "",
			summary{"OFFER", "10.41.0.11", "255.255.255.255:68", "undionly.kpxe", "255.255.255.0", "10.41.0.254", "cluster.test", "nid001", "10.41.0.1", false}},
		{"uefi request", "02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{uefi, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 41, 0, 11}))}, "",
			summary{"ACK", "10.41.0.11", "255.255.255.255:68", "ipxe.efi", "255.255.255.0", "10.41.0.254", "cluster.test", "nid001", "10.41.0.1", false}},
		{"arm64", "02:41:00:00:00:03", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))}, "",
			summary{"OFFER", "10.41.0.13", "255.255.255.255:68", "snp-arm64.efi", "255.255.0.0", "10.41.0.254", "", "nid003", "10.41.0.1", false}},
		{"ipxe user class", "02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{uefi, dhcpv4.WithUserClass("iPXE", false)}, "",
			summary{"OFFER", "10.41.0.11", "255.255.255.255:68", "http://10.41.0.1:8080/ipxe?mac=${net0/mac}", "255.255.255.0", "10.41.0.254", "cluster.test", "nid001", "10.41.0.1", true}},
		{"ipxe option 175", "02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{19, 1, 1})}, "",
			summary{"OFFER", "10.41.0.11", "255.255.255.255:68", "http://10.41.0.1:8080/ipxe?mac=${net0/mac}", "255.255.255.0", "10.41.0.254", "cluster.test", "nid001", "10.41.0.1", true}},
		{"os client request", "02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 41, 0, 11}))}, "",
			summary{"ACK", "10.41.0.11", "255.255.255.255:68", "undionly.kpxe", "255.255.255.0", "10.41.0.254", "cluster.test", "nid001", "10.41.0.1", false}},
		{"wrong requested address", "02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 41, 0, 99}))}, "",
			summary{Type: "NAK", YourIP: "0.0.0.0", Dst: "255.255.255.255:68", Next: "10.41.0.1"}},
		{"relayed", "02:41:00:00:00:02", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{10, 41, 2, 1})}, "",
			summary{"OFFER", "10.41.2.12", "10.41.2.1:67", "undionly.kpxe", "255.255.255.0", "10.41.2.254", "cluster.test", "nid002", "10.41.0.1", false}},
		{"relayed from the wrong segment", "02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{10, 41, 2, 1})}, "", summary{}},
		{"relay not configured", "02:41:00:00:00:02", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{10, 41, 9, 1})}, "", summary{}},
		{"unknown ignored", "02:41:00:00:00:99", dhcpv4.MessageTypeDiscover, nil, "", summary{}},
		{"unknown discovered", "02:41:00:00:00:99", dhcpv4.MessageTypeDiscover, nil, PolicyDiscovery,
			summary{"OFFER", "10.41.0.200", "255.255.255.255:68", "undionly.kpxe", "255.255.255.0", "10.41.0.254", "", "", "10.41.0.1", false}},
		{"other server chosen", "02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 41, 0, 9}))}, "", summary{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, mem, rec := testServer(t, func(c *Config) {
				if tc.policy != "" {
					c.Unknown = tc.policy
				}
			})
			req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mustMAC(tc.mac)), dhcpv4.WithMessageType(tc.typ)}, tc.mods...)...)
			if err != nil {
				t.Fatal(err)
			}
			out, dst := s.Handle(context.Background(), req.ToBytes(), nil)
			var resp *dhcpv4.DHCPv4
			if out != nil {
				if resp, err = dhcpv4.FromBytes(out); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if resp.TransactionID != req.TransactionID {
					t.Fatal("reply has another xid")
				}
			}
			if diff := cmp.Diff(tc.want, summarize(resp, dst)); diff != "" {
				t.Fatalf("reply (-want +got):\n%s", diff)
			}
			if tc.typ == dhcpv4.MessageTypeRequest && tc.want.Type == "ACK" {
				// Firmware's lease begins a boot; an OS client's (the
				// initramfs's) is only a phase of it.
				want := "nid001=dhcp"
				if tc.name == "os client request" {
					want = "nid001=initrd-dhcp"
				}
				if diff := cmp.Diff([]string{want}, rec.got); diff != "" {
					t.Fatalf("states (-want +got):\n%s", diff)
				}
			}
			if tc.policy == PolicyDiscovery {
				s.recordDiscovered(context.Background()) // Run's recorder, without Run
				n, err := mem.NodeByMAC(context.Background(), mustMAC(tc.mac))
				if err != nil || n.Discovered.IsZero() {
					t.Fatalf("discovered MAC not recorded in the inventory: %+v", n)
				}
			}
		})
	}
}

func TestPoolExhaustionAndReuse(t *testing.T) {
	s, _, _ := testServer(t, func(c *Config) { c.Unknown = PolicyDiscovery })
	ask := func(mac string) string {
		req, _ := dhcpv4.NewDiscovery(mustMAC(mac))
		out, _ := s.Handle(context.Background(), req.ToBytes(), nil)
		if out == nil {
			return ""
		}
		resp, _ := dhcpv4.FromBytes(out)
		return resp.YourIPAddr.String()
	}
	got := []string{ask("02:00:00:00:01:01"), ask("02:00:00:00:01:02"), ask("02:00:00:00:01:03"), ask("02:00:00:00:01:01")}
	if diff := cmp.Diff([]string{"10.41.0.200", "10.41.0.201", "", "10.41.0.200"}, got); diff != "" {
		t.Fatalf("pool leases (-want +got):\n%s", diff)
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	c := Defaults()
	c.Port = 0
	c.Unknown = "maybe"
	c.ServerIP = "x"
	c.Subnets = []Subnet{{Network: "10.0.0.0/8", Router: "11.0.0.1", Pool: "10.0.0.9-10.0.0.1"}}
	err := c.Validate()
	for _, want := range []string{"dhcp.port", "dhcp.unknown", "dhcp.server_ip", "router", "pool"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func FuzzHandle(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/fuzz/*.bin")
	for _, p := range seeds {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	for _, mods := range [][]dhcpv4.Modifier{
		{dhcpv4.WithHwAddr(mustMAC("02:41:00:00:00:01")), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithUserClass("iPXE", false)},
		{dhcpv4.WithHwAddr(mustMAC("02:41:00:00:00:02")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithGatewayIP(net.IP{10, 41, 2, 1})},
	} {
		p, _ := dhcpv4.New(mods...)
		f.Add(p.ToBytes())
	}
	s, _, _ := testServer(f, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out, dst := s.Handle(context.Background(), pkt, nil)
		if out != nil {
			if dst == nil {
				t.Fatal("reply without destination")
			}
			if _, err := dhcpv4.FromBytes(out); err != nil {
				t.Fatalf("our reply does not parse: %v", err)
			}
		}
	})
}

func TestMalformedPackets(t *testing.T) {
	s, _, _ := testServer(t, nil)
	good, _ := dhcpv4.NewDiscovery(mustMAC("02:41:00:00:00:01"))
	pkt := good.ToBytes()
	hugeOpt := append(append([]byte(nil), pkt[:240]...), 60, 255, 'x') // option claims 255 bytes, has 1
	truncated := pkt[:100]
	noEnd := append(append([]byte(nil), pkt[:240]...), 53, 1, 1, 12, 3, 'a', 'b', 'c') // no end option
	reply := append([]byte(nil), pkt...)
	reply[0] = 2 // BOOTREPLY: not for a server
	shortHW := append([]byte(nil), pkt...)
	shortHW[2] = 4 // hlen 4
	// The seeds of FuzzHandle (testdata/fuzz) are these packets.
	for _, tc := range []struct {
		name      string
		pkt       []byte
		wantReply bool
	}{
		{"empty", nil, false},
		{"truncated header", truncated, false},
		{"option longer than packet", hugeOpt, false},
		{"no end option", noEnd, false},
		{"bootreply", reply, false},
		{"short hardware address", shortHW, false},
		{"garbage", bytes.Repeat([]byte{0xff}, 1500), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := s.Handle(context.Background(), tc.pkt, nil)
			if (out != nil) != tc.wantReply {
				t.Fatalf("reply %v, want a reply: %v", out != nil, tc.wantReply)
			}
		})
	}
}
