package bootspec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

const digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

// installSet puts a manifest-only artifact set in a fresh artifact store: the
// resolver reads manifests, never artifact bytes.
func installSet(t *testing.T, name string, kinds ...string) *images.Store {
	t.Helper()
	st := images.NewStore(t.TempDir())
	dir, err := st.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, Cmdline: "console=ttyS0  quiet",
		Created: time.Unix(1700000000, 0).UTC(), Artifacts: map[string]images.Artifact{}}
	files := map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img", images.RootFS: "rootfs.squashfs"}
	for _, k := range kinds {
		os.WriteFile(filepath.Join(dir, files[k]), []byte(k), 0o644)
		sum := sha256.Sum256([]byte(k))
		m.Artifacts[k] = images.Artifact{File: files[k], Size: int64(len(k)), SHA256: hex.EncodeToString(sum[:])}
	}
	m.Root = images.RootImage{Format: "squashfs", PieceSize: 1 << 16}
	m.Root.Pieces, _, err = images.HashPieces(context.Background(), strings.NewReader(images.RootFS), m.Root.PieceSize)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Install(dir); err != nil {
		t.Fatal(err)
	}
	return st
}

type nfsRoots struct{}

func (nfsRoots) Export(name, digest string) (string, string, error) {
	return "10.45.0.1", "/imgctl/" + name, nil
}

func TestResolve(t *testing.T) {
	all := []string{images.Kernel, images.Initramfs, images.RootFS}
	tests := []struct {
		name    string
		node    inventory.Node // "" name: no node in the inventory
		kinds   []string       // artifacts in the image's set
		nfs     bool           // an NFS server is configured
		client  Client
		wantErr error // ErrNotManaged, or nil; other failures below
		failure string
		want    []string // substrings of the cmdline
		root    Root
	}{
		{name: "unknown MAC", client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}}, kinds: all, wantErr: ErrNotManaged},
		{name: "live by MAC", kinds: all,
			node:   inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.45.0.11", Settings: inventory.Settings{Image: "compute", Cmdline: "mitigations=off"}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.45.0.11")},
			want:   []string{"console=ttyS0 quiet mitigations=off", "imgctl.mode=live", "imgctl.node=nid001", "systemd.hostname=nid001", "imgctl.root=http://10.45.0.1:8080/artifacts/compute/"},
			root:   Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "live by IP", kinds: all,
			node:   inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.45.0.11", Settings: inventory.Settings{Image: "compute"}},
			client: Client{IP: netip.MustParseAddr("10.45.0.11")},
			want:   []string{"imgctl.mode=live"},
			root:   Root{Kind: RootLive, URL: "http://10.45.0.1:8080/artifacts/compute/2222222222222222222222222222222222222222222222222222222222222222/rootfs.squashfs"}},
		{name: "nfs", kinds: all, nfs: true,
			node:   inventory.Node{Name: "nid002", MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS}},
			client: Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: netip.MustParseAddr("10.45.0.99")},
			want:   []string{"imgctl.mode=nfs", "root=nfs4:10.45.0.1:/imgctl/compute:ro", "rootovl"},
			root:   Root{Kind: RootNFS, URL: "nfs://10.45.0.1/imgctl/compute", NFSHost: "10.45.0.1", NFSPath: "/imgctl/compute"}},
		{name: "nfs without server", kinds: all,
			node:    inventory.Node{Name: "nid002", MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS}},
			client:  Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}},
			failure: "NFS server is not configured"},
		{name: "no image", kinds: all,
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
			r := New(Config{PublicURL: "http://10.45.0.1:8080/", Console: "ttyS0,115200"}, nodes, installSet(t, "compute", tc.kinds...), roots, tokens)
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
			if strings.Contains(cmdline, "imgctl.dist") {
				t.Errorf("cmdline names a distribution mode nothing implements:\n%s", cmdline)
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
