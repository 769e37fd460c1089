package ui

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

func TestBuildStorm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	node := func(name string, st nodestate.State, phases map[nodestate.State]int) nodestate.Node {
		n := nodestate.Node{Name: name, State: st, Phases: map[nodestate.State]time.Time{}}
		for p, s := range phases {
			n.Phases[p] = at(s)
		}
		return n
	}
	states := []nodestate.Node{
		node("a", nodestate.Booted, map[nodestate.State]int{"dhcp": 0, "ipxe": 10, "kernel": 20, "initrd-dhcp": 25, "rootfs": 30, "booted": 40}),
		node("b", nodestate.Booted, map[nodestate.State]int{"dhcp": 0, "ipxe": 20, "kernel": 30, "rootfs": 50, "booted": 60}),
		node("c", nodestate.Kernel, map[nodestate.State]int{"dhcp": 10, "ipxe": 20, "kernel": 30}),
		node("d", nodestate.Failed, map[nodestate.State]int{"dhcp": 0, "failed": 5}),
		{Name: "e"}, // never reported
	}
	s := buildStorm(states, at(60), 7, 3) // one point every 10 s from t0
	want := map[nodestate.State][]int{
		"dhcp":   {3, 2, 0, 0, 0, 0, 0},
		"ipxe":   {0, 1, 2, 0, 0, 0, 0},
		"kernel": {0, 0, 1, 2, 2, 1, 1},
		"rootfs": {0, 0, 0, 1, 0, 1, 0},
		"booted": {0, 0, 0, 0, 1, 1, 2},
		"failed": {0, 1, 1, 1, 1, 1, 1},
	}
	if diff := cmp.Diff(want, s.Series); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	if s.Booted != 2 || s.P50 != 40 || s.P95 != 60 || s.Step != 10 || !s.Start.Equal(t0) {
		t.Errorf("booted %d p50 %v p95 %v step %v start %v", s.Booted, s.P50, s.P95, s.Step, s.Start)
	}
	wantSlow := []Slow{{Name: "b", State: "booted", Seconds: 60}, {Name: "c", State: "kernel", Seconds: 50}, {Name: "a", State: "booted", Seconds: 40}}
	if diff := cmp.Diff(wantSlow, s.Slow); diff != "" {
		t.Errorf("slowest (-want +got):\n%s", diff)
	}
	if s.Counts[""] != 1 || s.Counts[nodestate.Booted] != 2 {
		t.Errorf("counts %v", s.Counts)
	}
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		q    float64
		want float64
	}{
		{nil, 0.5, 0},
		{[]float64{7}, 0.95, 7},
		{[]float64{1, 2, 3, 4}, 0.5, 2},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 0.95, 19},
	} {
		if got := percentile(tc.v, tc.q); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.v, tc.q, got, tc.want)
		}
	}
}
