package bootsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/imagestest"
)

// TestServeTree runs the boot service with HTTP on loopback: a tree node's
// script names the coordinator, the coordinator (checking the node's token)
// gives it the server as source, and its progress shows in `dist status`'s
// API and on /metrics.
func TestServeTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	state := t.TempDir()
	set := imagestest.InstallSet(t, images.NewStore(state), "compute", "sha256:"+strings.Repeat("4", 64))
	mem := store.NewMemory()
	if err := mem.Update(ctx, func(inv *inventory.Inventory) error {
		return inv.Put(inventory.Node{Name: "nid001", MACs: []string{"52:54:00:00:40:01"}, IP: "127.0.0.1",
			Settings: inventory.Settings{Image: "compute", Distribution: inventory.DistTree, Rack: "r1"}})
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := config.Default()
	cfg.DHCP.Enabled, cfg.TFTP.Enabled = false, false
	cfg.HTTP.Listen, cfg.HTTP.PublicURL = addr, "http://"+addr
	cfg.HTTP.AdminToken = "admin-token-for-the-serve-test"
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, cfg, Deps{StateDir: state, Store: mem}) }()
	t.Cleanup(func() { cancel(); <-errc })
	base := "http://" + addr

	var script string
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "/ipxe?mac=52:54:00:00:40:01")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			script = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"imgctl.dist=tree", "imgctl.coordinator=" + base + dist.Prefix, "imgctl.peerport=7073"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}

	tokens, err := nodetoken.LoadSecret(state + "/httpboot.secret")
	if err != nil {
		t.Fatal(err)
	}
	token := tokens.Make("nid001", "52:54:00:00:40:01", "127.0.0.1")
	post := func(path string, body any) []byte {
		b, _ := json.Marshal(body)
		resp, err := http.Post(base+dist.Prefix+path+"?token="+token, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", path, resp.Status, out)
		}
		return out
	}
	pieces := len(set.Manifest.Root.Pieces)
	out := post("join", map[string]any{"transfer": set.Manifest.ImageDigest, "pieces": pieces, "piece_size": set.Manifest.Root.PieceSize,
		"node": "nid001", "peer_port": 7073})
	if !strings.Contains(string(out), `"peer":"`+dist.ServerSource+`"`) {
		t.Errorf("join answer %s: want the server", out)
	}
	post("progress", dist.Progress{Transfer: set.Manifest.ImageDigest, Node: "nid001", Held: 1, From: map[string]int{dist.ServerSource: 1}})

	st, err := dist.FetchStatus(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(st[0].Nodes) != 1 || st[0].Nodes[0].Held != 1 || st[0].Nodes[0].From[dist.ServerSource] != 1 {
		t.Errorf("status = %+v", st)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`imgctl_dist_pieces_held{node="nid001",transfer=%q} 1`, set.Manifest.ImageDigest),
		fmt.Sprintf(`imgctl_dist_pieces_received_total{node="nid001",source="@server",transfer=%q} 1`, set.Manifest.ImageDigest),
		"imgctl_http_requests_total", // httpboot's own figures on the same registry
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Every HTTP feature Serve composes is on the one server: a route left
	// out answers 404 instead of its own refusal.
	for path, want := range map[string]int{
		"/ui":                               http.StatusUnauthorized,
		"/ui/events":                        http.StatusUnauthorized,
		"/cloud-init/not-a-token/meta-data": http.StatusForbidden,
		"/cloud-init/meta-data":             http.StatusForbidden,
		"/api/v1/admin/nodes":               http.StatusUnauthorized,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}
