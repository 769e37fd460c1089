package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// swarmDone is what the swarm nodes' completion hook prints to aria2's
// stderr (the harness's doneLine): aria2 has checked every piece against
// the torrent's SHA-1s by then.
const swarmDone = "swarm: download complete"

// swarmPorts: the tracker on the server, aria2's BitTorrent port everywhere.
const (
	trackerPort = 6969
	btPort      = 6881
)

// swarm is the BitTorrent baseline as a site would run it today with
// Debian's packages: opentracker on the boot server, aria2 seeding there
// (the root image as serve holds it), mktorrent's .torrent with its default
// piece size, and aria2c on every node, which keeps seeding until the whole
// swarm is done. DHT and local peer discovery are off: the tracker is the
// one way peers find each other, as on a private cluster network.
type swarm struct {
	t        *testing.T
	dir      string // torrent, tracker chroot, seed copy, hook
	torrent  string
	sentinel *exec.Cmd // every aria2c stops once this exits (--stop-with-process)
}

func newSwarm(t *testing.T) *swarm {
	testenv.RequireCommands(t, "aria2c", "opentracker", "mktorrent")
	dir := t.TempDir()
	hook := filepath.Join(dir, "done.sh")
	// aria2 runs this when a node's download is complete and verified; it
	// goes on seeding. $3 is the file's path.
	script := "#!/bin/sh\necho \"" + swarmDone + " $3\" >&2\ntouch \"$3.done\"\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command("sleep", "3600")
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	return &swarm{t: t, dir: dir, torrent: filepath.Join(dir, "root.torrent"), sentinel: sentinel}
}

// setup (before the nodes start): copies the root image from serve on the
// server's own address (loopback, not its shaped link), makes the torrent,
// starts the tracker (whitelisting the torrent: Debian's opentracker is
// built with an access list) and the seeder.
func (sw *swarm) setup(s *storm) {
	t := sw.t
	seedDir := filepath.Join(sw.dir, "seed")
	os.MkdirAll(seedDir, 0o755)
	img := filepath.Join(seedDir, "rootfs.squashfs")
	if out, err := s.srv.Command(s.ctx, "curl", "-sf", "-o", img, s.rootURL).CombinedOutput(); err != nil {
		t.Fatalf("copy the root image for the seeder: %v: %s", err, out)
	}
	announce := fmt.Sprintf("http://10.60.0.1:%d/announce", trackerPort)
	if out, err := exec.CommandContext(s.ctx, "mktorrent", "-a", announce, "-o", sw.torrent, img).CombinedOutput(); err != nil {
		t.Fatalf("mktorrent: %v: %s", err, out)
	}
	out, err := exec.CommandContext(s.ctx, "aria2c", "-S", sw.torrent).Output()
	if err != nil {
		t.Fatalf("aria2c -S: %v", err)
	}
	var hash string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Info Hash: "); ok {
			hash = strings.TrimSpace(v)
		}
	}
	if hash == "" {
		t.Fatalf("no info hash in:\n%s", out)
	}
	chroot := filepath.Join(sw.dir, "tracker")
	os.MkdirAll(chroot, 0o755)
	os.WriteFile(filepath.Join(chroot, "whitelist"), []byte(hash+"\n"), 0o644)
	port := strconv.Itoa(trackerPort)
	sw.daemon(s, "opentracker", "opentracker", "-i", "10.60.0.1", "-p", port, "-P", port, "-d", chroot, "-w", "/whitelist", "-u", "nobody")
	sw.daemon(s, "seeder", append(sw.aria2Args(), "-d", seedDir, "--bt-seed-unverified=true", sw.torrent)...)
	// Ready: the tracker answers (the seeder announces within a second).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if s.srv.Command(s.ctx, "curl", "-s", "-o", "/dev/null", fmt.Sprintf("http://10.60.0.1:%d/stats", trackerPort)).Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("opentracker does not answer")
		}
	}
}

// daemon runs a server-side program in the server's namespace until the
// test ends, its output in the test's directory.
func (sw *swarm) daemon(s *storm, name string, args ...string) {
	log, err := os.Create(filepath.Join(sw.dir, name+".log"))
	if err != nil {
		sw.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	cmd := s.srv.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		sw.t.Fatalf("%s: %v", name, err)
	}
	sw.t.Cleanup(func() { stop(); cmd.Wait(); log.Close() })
}

// aria2Args are the options every aria2c of the swarm shares: seed until
// the sentinel exits, no DHT or local discovery, no preallocation (tmpfs).
func (sw *swarm) aria2Args() []string {
	return []string{"aria2c", "--seed-ratio=0.0", "--stop-with-process=" + strconv.Itoa(sw.sentinel.Process.Pid),
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--listen-port=" + strconv.Itoa(btPort),
		"--file-allocation=none", "--summary-interval=0", "--console-log-level=warn", "--bt-max-peers=0"}
}

func (sw *swarm) nodeArgs(s *storm, n benchNode) []string {
	return append(sw.aria2Args(), "-d", filepath.Join(s.out, n.name), "--on-bt-download-complete="+filepath.Join(sw.dir, "done.sh"), sw.torrent)
}

// stopWhenDone (the fault hook: it runs while the nodes fetch) waits until
// every node has its copy, then ends the swarm's seeding.
func (sw *swarm) stopWhenDone(s *storm, n int, limit time.Duration) {
	defer func() { sw.sentinel.Process.Kill(); sw.sentinel.Wait() }()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		marks, _ := filepath.Glob(filepath.Join(s.out, "*", "*.done"))
		if len(marks) == n {
			return
		}
	}
	sw.t.Errorf("the swarm did not complete in %s", limit)
}

// checkSwarmCopies: every node's file has the manifest's sha256.
func checkSwarmCopies(t *testing.T, s *storm) {
	out, err := s.srv.Command(s.ctx, "curl", "-sf", strings.TrimSuffix(s.rootURL, "rootfs.squashfs")+images.ManifestFile).Output()
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var m images.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, n := range s.nodes {
		if got := fileSHA256(t, filepath.Join(s.out, n.name, "rootfs.squashfs")); got != m.Artifacts["rootfs"].SHA256 {
			t.Errorf("%s: swarm copy sha256 %s, manifest says %s", n.name, got, m.Artifacts["rootfs"].SHA256)
		}
	}
}

// TestBenchDistSwarm measures tree distribution against a BitTorrent swarm
// (aria2 + opentracker + mktorrent) at N = 32, B = 50 Mbit/s, S = 128 MiB,
// in the same harness and run (bench/results/dist_swarm.json).
func TestBenchDistSwarm(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	const n, mbit, mib = 32, 50, 128
	// Pairs, each the tree then the swarm back to back, so that the load of
	// the (shared, busy) host weighs on both alike; every pair is reported.
	const pairs = 2
	out, _ := exec.Command("aria2c", "--version").Output()
	version, _, _ := strings.Cut(string(out), "\n")
	fig := func(r distRun) map[string]any {
		return map[string]any{"t_last_s": r.TLast, "p50_s": r.P50, "s_over_b_s": r.Floor, "r": r.R,
			"server_egress_bytes": r.Egress, "server_egress_over_s": r.EgressOverS, "node_peak_rss_mib": r.AgentHWMMiB}
	}
	var runs []map[string]any
	var ratios []float64
	for i := range pairs {
		load, _ := os.ReadFile("/proc/loadavg")
		tree := runDist(t, bin, agent, distCase{mode: "tree", n: n, mbit: mbit, mib: mib, stripes: 2}, 2*i)
		t.Logf("pair %d tree: T_last %.1fs p50 %.1fs R %.2f egress/S %.2f", i, tree.TLast, tree.P50, tree.R, tree.EgressOverS)
		sw := newSwarm(t)
		c := distCase{mode: "http", n: n, mbit: mbit, mib: mib, setup: sw.setup, nodeArgs: sw.nodeArgs, doneLine: swarmDone,
			fault: func(s *storm) { sw.stopWhenDone(s, n, 15*time.Minute) }, after: func(s *storm) { checkSwarmCopies(t, s) }}
		bt := runDist(t, bin, agent, c, 2*i+1)
		t.Logf("pair %d swarm: T_last %.1fs p50 %.1fs R %.2f egress/S %.2f", i, bt.TLast, bt.P50, bt.R, bt.EgressOverS)
		treeFig := fig(tree)
		treeFig["peer_piece_fraction"] = tree.PeerFraction
		ratio := tree.TLast / bt.TLast
		ratios = append(ratios, ratio)
		runs = append(runs, map[string]any{"tree": treeFig, "swarm": fig(bt), "tree_over_swarm_t_last": ratio,
			"host_loadavg_at_start": strings.TrimSpace(string(load))})
		t.Logf("pair %d: tree T_last / swarm T_last = %.2f (goal <= 0.6)", i, ratio)
	}
	mean := 0.0
	for _, r := range ratios {
		mean += r / float64(len(ratios))
	}
	cfg := dist.Config{Stripes: 2}.WithDefaults() // what the tree runs
	figures := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "nodes": n, "link_mbit": mbit, "size_mib": mib,
		"harness": "one imgctl serve and N nodes, each in a network namespace on one bridge; tc tbf at B on both ends of every veth (server included); copies on tmpfs",
		"tree": map[string]any{"stripes": cfg.Stripes, "fanout": cfg.Fanout, "sub_piece_bytes": cfg.SubPiece, "manifest_piece_size_bytes": images.DefaultPieceSize,
			"software": "imgctl serve + imgctl-agent, this tree"},
		"swarm": map[string]any{"piece_size_bytes": 256 << 10, // mktorrent's default (-l 18)
			"software": version + "; opentracker (Debian 12) as tracker; mktorrent 1.1 made the .torrent",
			"setup":    "the server seeds with aria2c (--bt-seed-unverified), every node runs aria2c and seeds until all are done; DHT and LPD off, so the tracker is the only peer discovery; --bt-max-peers=0 (no cap)"},
		"pairs": runs, "tree_over_swarm_t_last_mean": mean, "goal_tree_over_swarm_t_last": 0.6}
	maps.Copy(figures, benchresult.Host()) // the load average is also in each pair
	if err := benchresult.Write("dist_swarm.json", figures); err != nil {
		t.Fatal(err)
	}
}
