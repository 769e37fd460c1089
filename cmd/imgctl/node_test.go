package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

func TestNodeAndGroupCLI(t *testing.T) {
	state := t.TempDir()
	macs := filepath.Join(state, "macs.txt")
	os.WriteFile(macs, []byte("# rack 1\n52:54:00:00:00:01\n52-54-00-00-00-02\n\n52:54:00:00:00:03\n"), 0o644)
	st := []string{"--state", state, "-q"}
	mustRun := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, append(st, args...)...)
		if err != nil {
			t.Fatalf("imgctl %v: %v\n%s", args, err, errOut)
		}
		return out
	}
	mustRun("group", "add", "compute", "--image", "base", "--mode", "live", "--domain", "c.test", "--var", "rack=r1")
	mustRun("node", "add", "nid[001-003]", "--mac-file", macs, "--ip", "10.0.0.[1-3]", "--group", "compute", "--bmc", "10.1.0.1")
	mustRun("node", "set", "nid002", "--mode", "nfs", "--var", "gpu=yes")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mac count", []string{"node", "add", "nid[004-005]", "--mac", "52:54:00:00:00:04"}, "1 MACs for 2 nodes"},
		{"duplicate mac", []string{"node", "add", "nid004", "--mac", "52:54:00:00:00:01"}, "already used by nid001"},
		{"exists", []string{"node", "add", "nid001"}, "already exists"},
		{"unknown group", []string{"node", "add", "nid004", "--group", "gpu"}, `unknown group "gpu"`},
		{"bad mode", []string{"node", "set", "nid001", "--mode", "disk"}, `--mode "disk"`},
		{"rm unknown", []string{"node", "rm", "nid[003-004]"}, "unknown nodes: nid004"},
		{"group in use", []string{"group", "rm", "compute"}, "still used by 3 nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, append(st, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Failed commands changed nothing: nid003 is still there and nid004 is not.
	inv, err := inventory.Load(filepath.Join(state, "nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inv.Node("nid003"); !ok || inv.Len() != 3 {
		t.Fatalf("inventory changed by failed commands: %d nodes", inv.Len())
	}

	// Boot state from the node-state store shows in node ls.
	states, err := nodestate.Open(state, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	states.Record(t.Context(), "nid001", nodestate.DHCP, "test")
	if err := states.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Name   string            `json:"name"`
		MACs   []string          `json:"macs"`
		Mode   string            `json:"mode"`
		Domain string            `json:"domain"`
		Vars   map[string]string `json:"vars"`
		State  *struct {
			State string `json:"state"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(mustRun("node", "ls", "nid[001-002]", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].State == nil || got[0].State.State != "dhcp" || got[1].State != nil {
		t.Fatalf("node ls states: %+v", got)
	}
	if diff := cmp.Diff([]string{"52:54:00:00:00:02"}, got[1].MACs); diff != "" {
		t.Fatalf("normalised MACs (-want +got):\n%s", diff)
	}
	if got[1].Mode != "nfs" || got[1].Domain != "c.test" || got[1].Vars["rack"] != "r1" || got[1].Vars["gpu"] != "yes" {
		t.Fatalf("merged nid002 = %+v", got[1])
	}
	text := mustRun("node", "ls")
	if !strings.Contains(text, "nid001") || !strings.Contains(text, "dhcp") {
		t.Fatalf("node ls text:\n%s", text)
	}
	mustRun("node", "rm", "nid[002-003]")
	if out := mustRun("group", "ls", "-o", "json"); !strings.Contains(out, `"nid001"`) || strings.Contains(out, "nid002") {
		t.Fatalf("group ls after rm: %s", out)
	}
}
