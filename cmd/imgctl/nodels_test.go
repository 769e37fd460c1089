package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// TestNodeListingDigests: node ls marks a booted digest (current) or
// (stale) against the image's current set, and shows each phase's time.
func TestNodeListingDigests(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	booted := func(digest string) nodestate.Node {
		return nodestate.Node{State: nodestate.Booted, Updated: t0.Add(80 * time.Second), ImageDigest: digest,
			Phases: map[nodestate.State]time.Time{nodestate.DHCP: t0, nodestate.IPXE: t0.Add(2 * time.Second), nodestate.Kernel: t0.Add(3 * time.Second),
				nodestate.InitrdDHCP: t0.Add(20 * time.Second), nodestate.RootFS: t0.Add(40 * time.Second), nodestate.Booted: t0.Add(80 * time.Second)}}
	}
	cur := "sha256:" + "aa11223344556677889900aabbccddeeff00112233445566778899aabbccddee"
	old := "sha256:" + "bb11223344556677889900aabbccddeeff00112233445566778899aabbccddee"
	tests := []struct {
		name          string
		state         *nodestate.Node
		current       string
		wantState     string
		wantDigest    string
		wantPhasesEnd string
	}{
		{"current", ptrNode(booted(cur)), cur, "booted", "aa1122334455 (current)", "booted 1m20s"},
		{"stale", ptrNode(booted(old)), cur, "booted", "bb1122334455 (stale)", "booted 1m20s"},
		{"image has no set", ptrNode(booted(old)), "", "booted", "bb1122334455", "booted 1m20s"},
		{"never booted", nil, cur, "-", "-", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.0.0.1", Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeLive}}
			states := map[string]nodestate.Node{}
			if tt.state != nil {
				s := *tt.state
				s.Name = "nid001"
				states["nid001"] = s
			}
			_, rows := nodeListing([]inventory.Node{n}, states, func(string) string { return tt.current }, t0.Add(90*time.Second))
			got := []string{rows[0][6], rows[0][8]}
			if diff := cmp.Diff([]string{tt.wantState, tt.wantDigest}, got); diff != "" {
				t.Errorf("STATE, BOOTED-DIGEST (-want +got):\n%s", diff)
			}
			if phases := rows[0][9]; len(phases) < len(tt.wantPhasesEnd) || phases[len(phases)-len(tt.wantPhasesEnd):] != tt.wantPhasesEnd {
				t.Errorf("PHASES %q, want it to end in %q", phases, tt.wantPhasesEnd)
			} else if tt.state != nil && phases != "dhcp 0s, ipxe 2s, kernel 3s, initrd-dhcp 20s, rootfs 40s, booted 1m20s" {
				t.Errorf("PHASES %q", phases)
			}
		})
	}
}

func ptrNode(n nodestate.Node) *nodestate.Node { return &n }
