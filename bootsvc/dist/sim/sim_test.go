package sim

import (
	"math"
	"testing"
	"time"
)

// TestClosedForms: storms whose time is known exactly. A chain of N nodes
// (one stripe, fan-out 1) with verify-before-forward finishes at
// (k + N - 1) unit times, k the image's units; one node alone at S/B in any
// number of stripes; a server feeding two nodes at once (fan-out 0 peers
// impossible: both on the server) takes 2·S/B.
func TestClosedForms(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		p    Params
		want float64 // seconds
	}{
		{"one node", Params{Nodes: 1, Size: 32 * mib, Rate: 1 * mib, SubPiece: 256 << 10, Stripes: 1, Fanout: 1}, 32},
		{"one node, two stripes", Params{Nodes: 1, Size: 32 * mib, Rate: 1 * mib, SubPiece: 256 << 10, Stripes: 2, Fanout: 2}, 32},
		{"chain of 10", Params{Nodes: 10, Size: 32 * mib, Rate: 1 * mib, SubPiece: 1 * mib, Stripes: 1, Fanout: 1}, 32 + 9},
		{"chain of 10 with hop latency", Params{Nodes: 10, Size: 32 * mib, Rate: 1 * mib, SubPiece: 1 * mib, Stripes: 1, Fanout: 1,
			HopLatency: 100 * time.Millisecond}, 32 + 9*1.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Step = 10 * time.Millisecond
			r, err := Run(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.TLast.Seconds(); math.Abs(got-tc.want) > 0.02*tc.want {
				t.Errorf("T_last %.2fs, want %.2fs", got, tc.want)
			}
			if srv := r.ServerBytes; math.Abs(srv-float64(tc.p.Size)) > 1 {
				t.Errorf("server sent %.0f bytes, want S = %d", srv, tc.p.Size)
			}
		})
	}
}

// TestStripedTrees: the default schedule (two stripes, fan-out 2, 256 KiB)
// stays near one copy's time as N grows, with the server sending about S;
// one stripe with fan-out 2 is much slower (every child at B/2).
func TestStripedTrees(t *testing.T) {
	base := Params{Size: 64 << 20, Rate: 25e6 / 8, SubPiece: 256 << 10, Stripes: 2, Fanout: 2, HopLatency: 5 * time.Millisecond}
	for _, n := range []int{8, 64, 256} {
		p := base
		p.Nodes = n
		r, err := Run(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("N=%d: R %.3f, p50 %.1fs, server %.2f S", n, r.R(p), r.P50.Seconds(), r.ServerBytes/float64(p.Size))
		if r.R(p) > 1.2 || r.ServerBytes > 1.05*float64(p.Size) {
			t.Errorf("N=%d: R %.3f, server %.2f S: want R <= 1.2 and about S", n, r.R(p), r.ServerBytes/float64(p.Size))
		}
	}
	p := base
	p.Nodes, p.Stripes = 64, 1
	r, err := Run(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.R(p) < 1.8 {
		t.Errorf("one stripe, fan-out 2, N=64: R %.3f, want >= 1.8 (children at B/2)", r.R(p))
	}
}
