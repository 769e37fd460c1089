package bootspec

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/imagestest"
)

const digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

func artifacts(t *testing.T) *images.Store {
	st := images.NewStore(t.TempDir())
	imagestest.InstallSet(t, st, "compute", digest)
	return st
}

type nfsRoots struct{}

func (nfsRoots) Export(name, digest string) (string, string, error) {
	return "10.45.0.1", "/imgctl/" + name, nil
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		node    inventory.Node // "" name: no node in the inventory
		nfs     bool           // an NFS server is configured
		noTree  bool           // no tree coordinator
		client  Client
		wantErr error // ErrNotManaged, or nil; other failures below
		failure string
		want    []string // substrings of the cmdline
		root    Root
	}{
		{name: "unknown MAC", client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}}, wantErr: ErrNotManaged},
		{name: "live by MAC",
			node:   inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.45.0.11", Settings: inventory.Settings{Image: "compute", Cmdline: "mitigations=off"}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.45.0.11")},
			want:   []string{"console=ttyS0 quiet mitigations=off", "imgctl.mode=live", "imgctl.node=nid001", "systemd.hostname=nid001", "imgctl.root=http://10.45.0.1:8080/artifacts/compute/"},
			root:   Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "live by IP",
			node:   inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.45.0.11", Settings: inventory.Settings{Image: "compute"}},
			client: Client{IP: netip.MustParseAddr("10.45.0.11")},
			want:   []string{"imgctl.mode=live"},
			root:   Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "nfs", nfs: true,
			node:   inventory.Node{Name: "nid002", MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: netip.MustParseAddr("10.45.0.99")},
			want:   []string{"imgctl.mode=nfs", "root=nfs4:10.45.0.1:/imgctl/compute:ro", "rootovl"},
			root:   Root{Kind: RootNFS, URL: "nfs://10.45.0.1/imgctl/compute", NFSHost: "10.45.0.1", NFSPath: "/imgctl/compute"}},
		{name: "nfs without server",
			node:    inventory.Node{Name: "nid002", MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}},
			failure: "NFS server is not configured"},
		{name: "tree",
			node:   inventory.Node{Name: "nid004", MACs: []string{"02:00:00:00:00:04"}, Settings: inventory.Settings{Image: "compute", Distribution: inventory.DistTree}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}, IP: netip.MustParseAddr("10.45.0.14")},
			want: []string{"imgctl.mode=live", "imgctl.dist=tree", "imgctl.coordinator=http://10.45.0.1:8080/api/v1/dist/",
				"imgctl.peerport=7073", "imgctl.stall=15", "imgctl.seedfor=600"},
			root: Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "tree without coordinator", noTree: true,
			node:    inventory.Node{Name: "nid004", MACs: []string{"02:00:00:00:00:04"}, Settings: inventory.Settings{Image: "compute", Distribution: inventory.DistTree}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}},
			failure: "coordinator is not running"},
		{name: "tree over NFS", nfs: true,
			node:    inventory.Node{Name: "nid004", MACs: []string{"02:00:00:00:00:04"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS, Distribution: inventory.DistTree}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}},
			failure: "needs mode live"},
		{name: "multicast",
			node: inventory.Node{Name: "nid005", MACs: []string{"02:00:00:00:00:05"}, Settings: inventory.Settings{Image: "compute", Distribution: inventory.DistMulticast,
				Multicast: &inventory.Multicast{Group: "239.255.74.1", Rate: "90mbit"}}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}},
			want: []string{"imgctl.mode=live", "imgctl.dist=multicast", "imgctl.coordinator=http://10.45.0.1:8080/api/v1/dist/",
				"imgctl.mcast_group=239.255.74.1", "imgctl.mcast_port=7074", "imgctl.stall=15"},
			root: Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "multicast without HTTP server", noTree: true,
			node: inventory.Node{Name: "nid005", MACs: []string{"02:00:00:00:00:05"}, Settings: inventory.Settings{Image: "compute", Distribution: inventory.DistMulticast,
				Multicast: &inventory.Multicast{Group: "239.255.74.1", Rate: "90mbit"}}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}},
			failure: "HTTP server"},
		{name: "no image",
			node:    inventory.Node{Name: "nid003", MACs: []string{"02:00:00:00:00:03"}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}},
			failure: "has no image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			nodes := store.NewMemory()
			if tc.node.Name != "" {
				if err := nodes.Update(ctx, func(inv *inventory.Inventory) error { return inv.Put(tc.node) }); err != nil {
					t.Fatal(err)
				}
			}
			var roots NFSRoots
			if tc.nfs {
				roots = nfsRoots{}
			}
			tokens := nodetoken.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
			cfg := Config{PublicURL: "http://10.45.0.1:8080/", Console: "ttyS0,115200",
				Tree: &Tree{Coordinator: "http://10.45.0.1:8080/api/v1/dist/", PeerPort: 7073, Stall: 15 * time.Second, SeedFor: 10 * time.Minute}}
			if tc.noTree {
				cfg.Tree = nil
			}
			r := New(cfg, nodes, artifacts(t), roots, tokens)
			spec, err := r.Resolve(ctx, tc.client)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if tc.failure != "" {
				var nodeErr *Error
				if !errors.As(err, &nodeErr) || nodeErr.Node != tc.node.Name || !strings.Contains(err.Error(), tc.failure) {
					t.Fatalf("err = %v, want a failure of %s saying %q", err, tc.node.Name, tc.failure)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cmdline := spec.Cmdline()
			for _, w := range append(tc.want, "console=ttyS0,115200", "imgctl.token="+spec.Token) {
				if !strings.Contains(cmdline, w) {
					t.Errorf("cmdline lacks %q:\n%s", w, cmdline)
				}
			}
			if d := tc.node.Distribution; d != inventory.DistTree && d != inventory.DistMulticast && strings.Contains(cmdline, "imgctl.dist") {
				t.Errorf("cmdline of an http-distribution node names a distribution mode:\n%s", cmdline)
			}
			if spec.Root != tc.root {
				t.Errorf("root = %+v, want %+v", spec.Root, tc.root)
			}
			if len(spec.Initrds) != 2 || !strings.HasSuffix(spec.Initrds[0].URL, "/initramfs.img") ||
				!strings.Contains(spec.Initrds[1].URL, "/nodes/"+tc.node.Name+"/overlay.cpio.zst?token="+spec.Token) {
				t.Errorf("initrds = %+v", spec.Initrds)
			}
			ip := tc.node.IP
			if ip == "" {
				ip = tc.client.IP.String()
			}
			if _, err := tokens.Check(spec.Token, tc.node.Name, tc.node.MACs, ip); err != nil {
				t.Errorf("token does not check for %s at %s: %v", tc.node.Name, ip, err)
			}
		})
	}
}

// TestSpecs: every node's Spec at once, as the NFS server asks for them; a
// node that cannot boot is named in the error and the others still come back.
func TestSpecs(t *testing.T) {
	ctx := context.Background()
	nodes := store.NewMemory()
	if err := nodes.Update(ctx, func(inv *inventory.Inventory) error {
		return errors.Join(
			inv.Put(inventory.Node{Name: "live1", MACs: []string{"02:00:00:00:01:01"}, Settings: inventory.Settings{Image: "compute"}}),
			inv.Put(inventory.Node{Name: "nfs1", MACs: []string{"02:00:00:00:01:02"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS}}),
			inv.Put(inventory.Node{Name: "noimage", MACs: []string{"02:00:00:00:01:03"}}))
	}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{PublicURL: "http://10.45.0.1:8080"}, nodes, artifacts(t), nfsRoots{}, nil)
	specs, err := r.Specs(ctx)
	if err == nil || !strings.Contains(err.Error(), "noimage") {
		t.Errorf("err = %v, want the node without an image named", err)
	}
	kinds := map[string]RootKind{}
	for _, s := range specs {
		kinds[s.Node.Name] = s.Root.Kind
	}
	if len(specs) != 2 || kinds["live1"] != RootLive || kinds["nfs1"] != RootNFS {
		t.Fatalf("specs: %v", kinds)
	}
}
