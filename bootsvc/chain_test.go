package bootsvc

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/dhcp"
	"github.com/imgctl/imgctl/bootsvc/httpboot"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/imagestest"
)

// TestMACToScript follows one MAC from the DHCP handler through the resolver
// to the iPXE script, over the in-memory store: no inventory file exists, so
// none can be read on the way.
func TestMACToScript(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	artifacts := images.NewStore(state)
	set := imagestest.InstallSet(t, artifacts, "compute", "sha256:"+strings.Repeat("3", 64))
	mem := store.NewMemory()
	if err := mem.Update(ctx, func(inv *inventory.Inventory) error {
		return inv.Put(inventory.Node{Name: "nid001", MACs: []string{"52:54:00:00:30:01"}, IP: "10.47.0.11", Settings: inventory.Settings{Image: "compute"}})
	}); err != nil {
		t.Fatal(err)
	}
	tokens := nodetoken.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	dcfg := dhcp.Defaults()
	dcfg.Enabled, dcfg.ServerIP, dcfg.ScriptURL = true, "10.47.0.1", "http://10.47.0.1:8080/ipxe?mac=${net0/mac}"
	dcfg.Subnets = []dhcp.Subnet{{Network: "10.47.0.0/24"}}
	boot := bootspec.New(bootspec.Config{PublicURL: "http://10.47.0.1:8080", ScriptURL: dcfg.ScriptURL, Loaders: dcfg.BootFiles.Loaders()},
		mem, artifacts, nil, tokens)

	d, err := dhcp.New(dcfg, dhcp.Deps{Nodes: mem, Boot: boot, States: mem})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:00:30:01")
	req, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithUserClass("iPXE", false))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := d.Handle(ctx, req.ToBytes(), nil)
	offer, err := dhcpv4.FromBytes(out)
	if err != nil {
		t.Fatalf("no offer: %v", err)
	}
	if got := offer.YourIPAddr.String(); got != "10.47.0.11" {
		t.Fatalf("offered %s, want the node's 10.47.0.11", got)
	}
	reqAck, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithUserClass("iPXE", false))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = d.Handle(ctx, reqAck.ToBytes(), nil)
	ack, err := dhcpv4.FromBytes(out)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ack: %v %v", ack, err)
	}
	scriptURL := ack.BootFileNameOption()
	if scriptURL != dcfg.ScriptURL {
		t.Fatalf("boot file %q, want the resolver's script URL %q", scriptURL, dcfg.ScriptURL)
	}

	hcfg := httpboot.Config{Listen: "127.0.0.1:0", PublicURL: "http://10.47.0.1:8080"}
	h, err := httpboot.New(hcfg, httpboot.Deps{StateDir: state, Store: mem, Boot: boot, Tokens: tokens, Artifacts: artifacts})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, strings.ReplaceAll(scriptURL, "${net0/mac}", mac.String()), nil)
	r.RemoteAddr = "10.47.0.11:40000"
	w := httptest.NewRecorder()
	h.Handler().ServeHTTP(w, r)
	script := w.Body.String()
	for _, want := range []string{"#!ipxe", "/artifacts/compute/" + images.DigestHex(set.Manifest.ImageDigest) + "/vmlinuz", "imgctl.node=nid001", "imgctl.mode=live", "initramfs.img", "/nodes/nid001/overlay.cpio.zst?token="} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "nodes.yaml")); !os.IsNotExist(err) {
		t.Errorf("an inventory file appeared: %v", err)
	}
	n, err := mem.State(ctx, "nid001")
	if err != nil || n.State != nodestate.IPXE || n.Phases[nodestate.DHCP].IsZero() {
		t.Errorf("node record after DHCP and script: %+v, %v", n, err)
	}
}
