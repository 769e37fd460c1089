package test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchDist is the boot-storm benchmark (bench/results/dist.json): one
// `imgctl serve` and n nodes, each in its own network namespace on one
// bridge, every link shaped with tc tbf to B in both directions (the
// server's too), every node running the real imgctl-agent against the root
// image. It measures tree distribution against plain HTTP from the same
// server in the same run and harness.
func TestBenchDist(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	cases := []distCase{
		// One node alone: what the harness delivers on one shaped link.
		{mode: "http", n: 1, mbit: 100, mib: 256},
		{mode: "tree", n: 8, mbit: 100, mib: 256, fanout: 1},
		{mode: "http", n: 8, mbit: 100, mib: 256},
		{mode: "tree", n: 32, mbit: 50, mib: 128, fanout: 1},
		// 16 pieces for 64 nodes: a chain's per-hop piece time dominates,
		// fan-out 2 halves the depth's cost (R ≈ k·(1 + depth/pieces)).
		{mode: "tree", n: 64, mbit: 25, mib: 64, fanout: 2},
	}
	figures := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "piece_size_bytes": images.DefaultPieceSize,
		"harness": "one imgctl serve and N imgctl-agent processes, each in a network namespace on one bridge; tc tbf at B on both ends of every veth (server included); root images on tmpfs"}
	runs := map[string]distRun{}
	for i, c := range cases {
		key := fmt.Sprintf("%s_n%d", c.mode, c.n)
		r := runDist(t, bin, agent, c, i)
		runs[key] = r
		figures[key] = map[string]any{"nodes": c.n, "link_mbit": c.mbit, "size_mib": c.mib, "fanout": c.fanout,
			"t_last_s": r.TLast, "p50_s": r.P50, "s_over_b_s": r.Floor, "r": r.R,
			"server_egress_bytes": r.Egress, "server_egress_over_s": r.EgressOverS, "peer_piece_fraction": r.PeerFraction,
			"agent_peak_rss_mib": r.AgentHWMMiB}
		t.Logf("%s: T_last %.1fs p50 %.1fs S/B %.1fs R %.2f egress/S %.2f peers %.0f%%", key, r.TLast, r.P50, r.Floor, r.R, r.EgressOverS, 100*r.PeerFraction)
	}
	if h, tr := runs["http_n8"], runs["tree_n8"]; h.TLast > 0 {
		figures["tree_vs_http_t_last_ratio_n8"] = tr.TLast / h.TLast
	}
	if one := runs["http_n1"]; one.TLast > 0 {
		figures["harness_one_copy_r"] = one.R // R of a single node alone: the harness's own overhead over S/B
	}
	if err := benchresult.Write("dist.json", figures); err != nil {
		t.Fatal(err)
	}
}
