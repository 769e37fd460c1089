package test

import (
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/mcastwire"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchDistMulticast is the multicast half of the boot-storm benchmark
// (bench/results/dist_multicast.json): the harness of TestBenchDist (one
// `imgctl serve`, n agents in namespaces on one bridge, tbf at B on both
// ends of every veth), multicast at N = 32, B = 100 Mbit/s, S = 256 MiB,
// without loss and with 1% random loss on each receiver link, and in the
// same run Debian's udpcast (udp-sender / udp-receiver) at the same rate,
// sizes and loss. IMGCTL_MCAST_N and IMGCTL_MCAST_MIB override N and S.
func TestBenchDistMulticast(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount", "iptables", "udp-sender", "udp-receiver")
	n, mib := envInt("IMGCTL_MCAST_N", 32), int64(envInt("IMGCTL_MCAST_MIB", 256))
	bin := imgctl(t)
	agent := buildAgent(t)
	load, _ := os.ReadFile("/proc/loadavg")
	figures := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "piece_size_bytes": images.DefaultPieceSize,
		"datagram_bytes": mcastwire.MaxDatagram, "chunk_bytes": mcastwire.MaxData,
		"harness":       "one imgctl serve and N imgctl-agent processes, each in a network namespace on one bridge (IGMP snooping off); tc tbf at B on both ends of every veth (server included); loss: iptables statistic random drop of every packet into each receiver (the kernel has no sch_netem); root images on tmpfs",
		"sender_rate":   "0.96·B (IP packets), for imgctl and for udp-sender --max-bitrate",
		"loadavg_start": strings.TrimSpace(string(load)),
		"repair_note":   "repair is over HTTP Range from the boot server only (no FEC, no peer repair): with independent 1% loss every node repairs about 1% of S, and those repairs share the server's uplink"}
	for i, c := range []struct {
		key string
		c   mcastCase
	}{
		{"multicast_lossless", mcastCase{n: n, mbit: 100, mib: mib}},
		{"udpcast_lossless", mcastCase{n: n, mbit: 100, mib: mib, udpcast: true}},
		{"multicast_loss1", mcastCase{n: n, mbit: 100, mib: mib, loss: 1}},
		{"udpcast_loss1", mcastCase{n: n, mbit: 100, mib: mib, loss: 1, udpcast: true}},
	} {
		r := runMulticast(t, bin, agent, c.c, i)
		f := map[string]any{"nodes": c.c.n, "link_mbit": c.c.mbit, "size_mib": c.c.mib, "loss_percent": c.c.loss,
			"t_last_s": r.TLast, "p50_s": r.P50, "s_over_b_s": r.Floor, "r": r.R,
			"server_egress_bytes": r.Egress, "server_egress_over_s": r.EgressOverS}
		if !c.c.udpcast {
			f["repair_bytes_total"] = r.RepairBytes
			f["repair_over_s_per_node"] = r.RepairOverS
			f["repair_over_s_total"] = float64(r.RepairBytes) / float64(r.S)
			f["pieces_completed_by_multicast_fraction"] = r.MulticastFraction
			f["carousel_passes"] = r.Passes
			f["agent_peak_rss_mib"] = r.AgentHWMMiB
		}
		figures[c.key] = f
		t.Logf("%s: T_last %.1fs p50 %.1fs S/B %.1fs R %.2f egress/S %.2f repair/S per node %.3f", c.key, r.TLast, r.P50, r.Floor, r.R, r.EgressOverS, r.RepairOverS)
	}
	for _, loss := range []string{"lossless", "loss1"} {
		m, u := figures["multicast_"+loss].(map[string]any), figures["udpcast_"+loss].(map[string]any)
		figures["t_last_vs_udpcast_"+loss] = m["t_last_s"].(float64) / u["t_last_s"].(float64)
	}
	maps.Copy(figures, benchresult.Host())
	if err := benchresult.Write("dist_multicast.json", figures); err != nil {
		t.Fatal(err)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
