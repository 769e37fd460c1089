package vmboot

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// memNodes is an in-memory Nodes.
type memNodes map[string]inventory.Node

func (m memNodes) Node(_ context.Context, name string) (inventory.Node, error) {
	n, ok := m[name]
	if !ok {
		return inventory.Node{}, fmt.Errorf("%w in memory", store.ErrNotFound)
	}
	return n, nil
}

// memStates is an in-memory States.
type memStates map[string]nodestate.Node

func (m memStates) State(_ context.Context, node string) (nodestate.Node, error) {
	n, ok := m[node]
	if !ok {
		return nodestate.Node{}, store.ErrNotFound
	}
	return n, nil
}

func TestBootRefuses(t *testing.T) {
	state := t.TempDir()
	nodes := memNodes{
		"nomac":   {Name: "nomac", IP: "10.60.0.2", Settings: inventory.Settings{Image: "img"}},
		"noimage": {Name: "noimage", MACs: []string{"52:54:00:60:00:03"}, IP: "10.60.0.3"},
		"noset":   {Name: "noset", MACs: []string{"52:54:00:60:00:04"}, IP: "10.60.0.4", Settings: inventory.Settings{Image: "img"}},
	}
	tests := []struct {
		name, node string
		opts       Options
		wantErr    string
	}{
		{"unknown node", "ghost", Options{}, "node ghost: not found in memory"},
		{"no MAC", "nomac", Options{}, "needs a MAC and an IP"},
		{"no image", "noimage", Options{}, "no image"},
		{"no artifacts", "noset", Options{}, "image img has no boot artifacts"},
		{"bad mode", "noset", Options{Mode: "pxe"}, `mode "pxe"`},
		{"no stores", "noset", Options{Nodes: nil}, "need Nodes, States and StateDir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.StateDir = state
			if tt.name != "no stores" {
				opts.Nodes, opts.States = nodes, memStates{}
			}
			r, err := Boot(context.Background(), opts, tt.node)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if r.Node != tt.node || r.Booted || r.Error != err.Error() {
				t.Errorf("result %+v", r)
			}
		})
	}
}

func TestBootAllNamesFailures(t *testing.T) {
	results, err := BootAll(context.Background(), Options{StateDir: t.TempDir(), Nodes: memNodes{}, States: memStates{}},
		[]string{"n1", "n2", "n3"})
	if err == nil || !strings.Contains(err.Error(), "3 of 3 nodes did not boot: n[1-3]") {
		t.Errorf("err = %v", err)
	}
	if len(results) != 3 || results[2].Node != "n3" || results[2].Error == "" {
		t.Errorf("results %+v", results)
	}
}

func TestWriteInventory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.yaml")
	n := inventory.Node{Name: "nid001", MACs: []string{"52:54:00:aa:00:01"}, IP: "10.61.0.11", Groups: []string{"compute", "rack1"},
		Settings: inventory.Settings{Image: "boot-tiny", Mode: inventory.ModeNFS, Netmask: "/24", SSHKeys: []string{"ssh-ed25519 AAAA x", "ssh-ed25519 BBBB vmboot@nid001"}}}
	if err := writeInventory(path, n); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := inv.Node("nid001")
	if !ok {
		t.Fatal("node missing from the private inventory")
	}
	if d := cmp.Diff(n, got); d != "" {
		t.Errorf("private inventory node (-want +got):\n%s", d)
	}
	if inv.Len() != 1 || len(inv.Groups()) != 2 {
		t.Errorf("private inventory has %d nodes, %d groups; want 1 and 2", inv.Len(), len(inv.Groups()))
	}
}

func TestServeArgv(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		mode inventory.BootMode
		want []string
	}{
		{"live", Options{StateDir: "/s"}, inventory.ModeLive,
			[]string{"/bin/imgctl", "--state", "/s", "--inventory", "/s/vm/n/nodes.yaml", "serve", "--interface", "br0", "--address", "10.62.0.1", "--nfs=false", "--ra"}},
		{"nfs with settings", Options{StateDir: "/s", ServeConfig: "/c.yaml", ServeSets: []string{"http.retries=3", "a=b"}}, inventory.ModeNFS,
			[]string{"/bin/imgctl", "--state", "/s", "--inventory", "/s/vm/n/nodes.yaml", "serve", "--interface", "br0", "--address", "10.62.0.1", "--nfs=true", "--ra",
				"--config", "/c.yaml", "--set", "http.retries=3", "--set", "a=b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serveArgv("/bin/imgctl", tt.opts, "/s/vm/n/nodes.yaml", "10.62.0.1", tt.mode)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("argv (-want +got):\n%s", d)
			}
		})
	}
}

func TestStateWatch(t *testing.T) {
	start := time.Now()
	states := memStates{}
	var progress bytes.Buffer
	w := &stateWatch{states: states, node: "n1", since: start, start: start, progress: &progress}
	ctx := context.Background()
	if ok, err := w.booted(ctx); ok || err != nil {
		t.Fatalf("booted with no record = %v, %v", ok, err)
	}
	// A record of an earlier boot is not this boot's.
	states["n1"] = nodestate.Node{Name: "n1", State: nodestate.Booted, Updated: start.Add(-time.Minute),
		Phases: map[nodestate.State]time.Time{nodestate.Booted: start.Add(-time.Minute)}}
	if ok, _ := w.booted(ctx); ok {
		t.Fatal("an earlier boot's record counted")
	}
	states["n1"] = nodestate.Node{Name: "n1", State: nodestate.Kernel, Updated: start.Add(3 * time.Second),
		Phases: map[nodestate.State]time.Time{nodestate.Booted: start.Add(-time.Minute), nodestate.DHCP: start.Add(2 * time.Second), nodestate.Kernel: start.Add(3 * time.Second)}}
	if ok, _ := w.booted(ctx); ok {
		t.Fatal("booted at kernel")
	}
	states["n1"] = nodestate.Node{Name: "n1", State: nodestate.Booted, Updated: start.Add(9 * time.Second), Hostname: "n1",
		Phases: map[nodestate.State]time.Time{nodestate.DHCP: start.Add(2 * time.Second), nodestate.Kernel: start.Add(3 * time.Second), nodestate.Booted: start.Add(9 * time.Second)}}
	if ok, _ := w.booted(ctx); !ok {
		t.Fatal("not booted after the booted report")
	}
	want := []Phase{{"server", "dhcp", 2}, {"server", "kernel", 3}, {"server", "booted", 9}}
	if d := cmp.Diff(want, w.phases); d != "" {
		t.Errorf("phases (-want +got):\n%s", d)
	}
	if st, ok := w.last(); !ok || st.Hostname != "n1" {
		t.Errorf("last = %+v, %v", st, ok)
	}
	if !strings.Contains(progress.String(), "n1:    9.0s  server   booted") {
		t.Errorf("progress:\n%s", progress.String())
	}
}
