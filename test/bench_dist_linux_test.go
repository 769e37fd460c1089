package test

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/dist/sim"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchDist is the boot-storm benchmark (bench/results/dist.json): one
// `imgctl serve` and n nodes, each in its own network namespace on one
// bridge, every link shaped with tc tbf to B in both directions (the
// server's too), every node running the real imgctl-agent against the root
// image. It measures tree distribution against plain HTTP from the same
// server in the same run and harness, and checks the simulator
// (bootsvc/dist/sim) against the harness at N = 64.
func TestBenchDist(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	only := os.Getenv("IMGCTL_BENCH_DIST_CASES") // e.g. "curl_n1,tree_n64": a subset while tuning
	cases := []distCase{
		// One node alone: what the harness's links carry (curl), and the
		// agent's plain HTTP mode on the same link.
		{mode: "curl", n: 1, mbit: 100, mib: 256},
		{mode: "http", n: 1, mbit: 100, mib: 256},
		{mode: "tree", n: 8, mbit: 100, mib: 256, stripes: 2},
		{mode: "http", n: 8, mbit: 100, mib: 256},
		{mode: "tree", n: 32, mbit: 50, mib: 128, stripes: 2},
		{mode: "tree", n: 64, mbit: 25, mib: 64, stripes: 2},
		{mode: "tree", n: 128, mbit: 10, mib: 32, stripes: 2},
	}
	cfg := dist.Config{Stripes: 2}.WithDefaults() // what the tree cases run
	figures := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "manifest_piece_size_bytes": images.DefaultPieceSize,
		"tree_sub_piece_bytes": cfg.SubPiece, "tree_stripes": cfg.Stripes, "tree_fanout": cfg.Fanout,
		"harness":    "one imgctl serve and N imgctl-agent processes, each in a network namespace on one bridge; tc tbf at B on both ends of every veth (server included; burst 10 ms of B, at least 32 KiB; latency 100 ms); root images on tmpfs. tbf counts whole Ethernet frames, so TCP payload tops out near 0.95 B: a perfect single copy has R of about 1.05",
		"arithmetic": "With verify-before-forward, each hop of a tree delays the last node by one forwarding unit at the rate it arrives. Manifest pieces of 4 MiB: S = 64 MiB is 16 pieces; a piece-granular chain needs about k + N - 1 piece-times, a binary tree k + log2 N - 1 at B/2 per child, so R >= ~1.3 at N = 64 and ~1.75 at N = 128 even for the best schedule, and a fan-out of 2 halves every child's rate. So tree mode passes on 256 KiB sub-pieces (sha256 of each derived by the boot service after the image checked out against the manifest; every manifest piece verified again by the agent) in 2 stripes: each node is an inner node of one stripe's binary tree and a leaf of the other, forwards its stripe to 2 children at B/2 (uploading about B), and receives both stripes at B/2 each. Expected T_last ~ S/B + depth x 2 x sub/B: N = 64 (25 Mbit/s): 21.5 s + 6 x 0.17 s = 1.05 (R ~1.10 with the 0.95 framing); N = 128 (10 Mbit/s): 26.8 s + 7 x 0.42 s = 1.11 (~1.16).",
	}
	loadavg := func() string { b, _ := os.ReadFile("/proc/loadavg"); return strings.TrimSpace(string(b)) }
	figures["loadavg_start"] = loadavg()
	runs := map[string]distRun{}
	for i, c := range cases {
		key := fmt.Sprintf("%s_n%d", c.mode, c.n)
		if only != "" && !strings.Contains(","+only+",", ","+key+",") {
			continue
		}
		r := runDist(t, bin, agent, c, i)
		runs[key] = r
		figures[key] = map[string]any{"nodes": c.n, "link_mbit": c.mbit, "size_mib": c.mib,
			"t_last_s": r.TLast, "p50_s": r.P50, "s_over_b_s": r.Floor, "r": r.R,
			"server_egress_bytes": r.Egress, "server_egress_over_s": r.EgressOverS, "peer_piece_fraction": r.PeerFraction,
			"agent_peak_rss_mib": r.AgentHWMMiB, "loadavg_after": loadavg()}
		t.Logf("%s: T_last %.1fs p50 %.1fs S/B %.1fs R %.2f egress/S %.2f peers %.0f%% rss %.1f MiB", key, r.TLast, r.P50, r.Floor, r.R, r.EgressOverS, 100*r.PeerFraction, r.AgentHWMMiB)
	}
	if h, tr := runs["http_n8"], runs["tree_n8"]; h.TLast > 0 && tr.TLast > 0 {
		figures["tree_vs_http_t_last_ratio_n8"] = tr.TLast / h.TLast
	}
	if one := runs["curl_n1"]; one.TLast > 0 {
		figures["harness_one_copy_r"] = one.R // one curl alone: the harness's own overhead over S/B
	}
	if one := runs["http_n1"]; one.TLast > 0 {
		figures["agent_http_one_copy_r"] = one.R
	}
	// The simulator at the harness's N = 64 parameters, its link rate taken
	// as what one copy really carried in this run (curl_n1's goodput).
	if h, ok := runs["tree_n64"]; ok {
		eff := 1.0
		if one := runs["curl_n1"]; one.TLast > 0 {
			eff = 1 / one.R
		}
		p := sim.Params{Nodes: 64, Size: 64 << 20, Rate: 25e6 / 8 * eff, SubPiece: cfg.SubPiece, Stripes: cfg.Stripes,
			Fanout: cfg.Fanout, HopLatency: 5 * time.Millisecond, JoinSpread: 2 * time.Second}
		res, err := sim.Run(p)
		if err != nil {
			t.Fatal(err)
		}
		floor := float64(64<<20) * 8 / 25e6
		simR := res.TLast.Seconds() / floor
		figures["sim_check_n64"] = map[string]any{"params": p.String(), "sim_r": simR, "harness_r": h.R,
			"ratio": simR / h.R, "within_10_percent": simR/h.R > 0.9 && simR/h.R < 1.1}
		t.Logf("simulator at N=64: R %.3f, harness %.3f (ratio %.3f)", simR, h.R, simR/h.R)
		if r := simR / h.R; r < 0.9 || r > 1.1 {
			t.Errorf("simulator R %.3f vs harness R %.3f: off by more than 10%%", simR, h.R)
		}
	}
	figures["sim_model"] = "bootsvc/dist/sim: the real Coordinator (Join/Report on a simulated clock); every node and the server have up and down links of B; a flow (one stripe from one source) runs at min(B/flows out of the source, B/flows into the node) and never passes what its source holds; a sub-piece is passed on HopLatency after it is complete; nodes join evenly over JoinSpread"
	maps.Copy(figures, benchresult.Host()) // and loadavg after each case
	if err := benchresult.Write("dist.json", figures); err != nil {
		t.Fatal(err)
	}
}

// TestBenchDistSim runs the simulator (bootsvc/dist/sim, the real
// coordinator over a fluid link model) beyond what the harness can hold:
// the N = 64 and N = 128 links at 1,000 and 10,000 nodes
// (bench/results/dist_sim.json).
func TestBenchDistSim(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	cfg := dist.Config{Stripes: 2}.WithDefaults() // what the tree cases run
	figures := map[string]any{"date": time.Now().UTC().Format(time.RFC3339),
		"sim_model": "bootsvc/dist/sim: the real Coordinator (Join/Report on a simulated clock); every node and the server have up and down links of B; a flow (one stripe from one source) runs at min(B/flows out of the source, B/flows into the node) and never passes what its source holds; a sub-piece is passed on HopLatency after it is complete; nodes join evenly over JoinSpread"}
	for _, sc := range []struct {
		n    int
		mbit float64
		mib  int64
	}{{1000, 25, 64}, {10000, 25, 64}, {1000, 10, 32}, {10000, 10, 32}} {
		p := sim.Params{Nodes: sc.n, Size: sc.mib << 20, Rate: sc.mbit * 1e6 / 8, SubPiece: cfg.SubPiece, Stripes: cfg.Stripes,
			Fanout: cfg.Fanout, HopLatency: 5 * time.Millisecond, JoinSpread: 2 * time.Second}
		res, err := sim.Run(p)
		if err != nil {
			t.Fatal(err)
		}
		figures[fmt.Sprintf("sim_n%d_%gmbit", sc.n, sc.mbit)] = map[string]any{"params": p.String(), "r": res.R(p),
			"p50_s": res.P50.Seconds(), "t_last_s": res.TLast.Seconds(), "server_egress_over_s": res.ServerBytes / float64(p.Size)}
		t.Logf("simulator N=%d at %g Mbit/s: R %.3f", sc.n, sc.mbit, res.R(p))
	}
	if err := benchresult.Write("dist_sim.json", figures); err != nil {
		t.Fatal(err)
	}
}
