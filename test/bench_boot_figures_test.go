package test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// The boot benchmark's arithmetic: what it reads from a console and how it
// folds boots into figures.
func TestBootFigures(t *testing.T) {
	console := "[    2.500000] Trying to unpack rootfs image as initramfs...\n" +
		"[    9.750000] Freeing initrd memory: 28908K\n" +
		"[  120.000000] systemd[1]: rpcbind.service: start operation timed out. Terminating.\n"
	if got := unpackSeconds(console); got != 7.25 {
		t.Errorf("unpackSeconds = %v, want 7.25", got)
	}
	if got := unpackSeconds("no kernel lines"); got != 0 {
		t.Errorf("unpackSeconds without the lines = %v, want 0", got)
	}
	waits := timeoutWaits(console, &nodestate.Timeline{Slowest: []nodestate.UnitTime{{Unit: "slow.service", Seconds: 95}, {Unit: "ok.service", Seconds: 3}}})
	if d := cmp.Diff([]string{"[  120.000000] systemd[1]: rpcbind.service: start operation timed out. Terminating.", "slow.service took 95.0s"}, waits); d != "" {
		t.Errorf("timeoutWaits (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		in   []float64
		want map[string]float64
	}{
		{[]float64{3, 1, 2}, map[string]float64{"median": 2, "max": 3}},
		{[]float64{4, 1, 2, 3}, map[string]float64{"median": 2.5, "max": 4}},
		{nil, map[string]float64{}},
	} {
		if d := cmp.Diff(tc.want, stats(tc.in)); d != "" {
			t.Errorf("stats(%v) (-want +got):\n%s", tc.in, d)
		}
	}
	img, w := bootFigures(map[string][]bootSample{
		"live-squashfs": {{booted: 60, timeline: &nodestate.Timeline{UserspaceS: 20}}, {booted: 90}},
		"nfs":           {{booted: 50, timeline: &nodestate.Timeline{UserspaceS: 18}}, {booted: 60, timeline: &nodestate.Timeline{UserspaceS: 22}}},
	})
	live := img["live-squashfs"].(map[string]any)
	if d := cmp.Diff(map[string]float64{"median": 75.0 / 55, "max": 1.5}, live["vs_nfs_booted"]); d != "" {
		t.Errorf("live vs nfs (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]float64{"median": 20, "max": 20}, live["userspace_s"]); d != "" {
		t.Errorf("userspace over the boots with a timeline (-want +got):\n%s", d)
	}
	if live["timelines_missed"] != 1 || len(w) != 0 {
		t.Errorf("timelines missed %v, waits %v", live["timelines_missed"], w)
	}
}
