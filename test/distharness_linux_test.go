package test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/imagestest"
	"github.com/imgctl/imgctl/internal/netns"
)

// distCase is one storm: n nodes each fetching an S-byte root image over
// links of mbit Mbit/s.
type distCase struct {
	mode    string // tree | http | curl (one plain curl per node: what the links carry, without the agent)
	n, mbit int
	mib     int64
	fanout  int // tree: dist.fanout; 0 = the coordinator's default
	stripes int // tree: dist.stripes; 0 = the coordinator's default
	stall   int // tree: seconds without bytes before a source counts as stalled; 0 = 10
	// fault, if set, runs once the agents have started (the faults tests).
	fault func(s *storm)
	// Another program on the nodes than the agent (the swarm baseline):
	// setup runs before the nodes start, nodeArgs is a node's command, and
	// doneLine the stderr line that says it holds a verified copy.
	setup    func(s *storm)
	nodeArgs func(s *storm, n benchNode) []string
	doneLine string
	// after, if set, runs once every agent has exited, before the harness
	// is torn down (serve still answers, the copies are still there).
	after func(s *storm)
}

// distRun is what one storm measured.
type distRun struct {
	TLast, P50   float64 // seconds from start to the last / median node holding a verified copy
	Egress       int64   // bytes the server's link sent
	S            int64
	Floor        float64 // S/B in seconds
	R            float64 // TLast / Floor
	EgressOverS  float64
	PeerFraction float64               // tree: share of all pieces that came from peers
	AgentHWMMiB  float64               // the largest agent's peak RSS (VmHWM), MiB
	Done         map[string]float64    // node → seconds to a verified copy
	Status       []dist.TransferStatus // the coordinator's, at the end (tree)
}

// storm is a running storm, for fault hooks.
type storm struct {
	t      *testing.T
	ctx    context.Context
	nodes  []benchNode
	srv    *netns.NS
	hub    *netns.NS
	bin    string
	base   string
	mu     sync.Mutex
	cmds   map[string]*exec.Cmd
	killed map[string]bool
	rate   string // tbf rate and burst of every link
	burst  string
	// For the fault tests (dist_faults_more_linux_test.go): where the agents
	// write their root images, the running serve, its log.
	out, rootURL, serveLog string
	serve                  *serveProc
}

// benchNode is one node's namespace and its link (a: node side, b: hub side).
type benchNode struct {
	name, mac, ip string
	ns            *netns.NS
	a, b          string
}

// kill kills a node's agent outright (SIGKILL).
func (s *storm) kill(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killed[name] = true
	s.cmds[name].Process.Kill()
}

// stallLink drops a node's link to 1 kbit/s in both directions.
func (s *storm) stallLink(name string) { s.shapeLink(name, "1kbit", "1600") }

// restoreLink gives a stalled node its rate back.
func (s *storm) restoreLink(name string) { s.shapeLink(name, s.rate, s.burst) }

func (s *storm) shapeLink(name, rate, burst string) {
	for _, n := range s.nodes {
		if n.name != name {
			continue
		}
		for _, end := range []struct {
			ns  *netns.NS
			dev string
		}{{n.ns, n.a}, {s.hub, n.b}} {
			if out, err := end.ns.Command(s.ctx, "tc", "qdisc", "change", "dev", end.dev, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms").CombinedOutput(); err != nil {
				s.t.Errorf("tc %s: %v: %s", end.dev, err, out)
			}
		}
	}
}

// node waits (bounded) until cond holds for name in the coordinator's status.
func (s *storm) node(name string, cond func(dist.NodeStatus) bool) (dist.NodeStatus, bool) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		st, _ := distStatus(ctx, s.srv, s.bin, s.base)
		for _, tr := range st {
			for _, n := range tr.Nodes {
				if n.Node == name && cond(n) {
					return n, true
				}
			}
		}
		sleep(ctx, 300*time.Millisecond)
	}
	return dist.NodeStatus{}, false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// buildAgent builds the static node agent.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "imgctl-agent")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/imgctl-agent")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build imgctl-agent: %v: %s", err, b)
	}
	return out
}

// runDist builds the harness for c, runs the storm once and tears it down.
func runDist(t *testing.T, bin, agent string, c distCase, run int) distRun {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	state := t.TempDir()
	size := c.mib << 20
	var seed [32]byte
	copy(seed[:], fmt.Sprintf("dist-bench-%d", size))
	digest := sha256.Sum256(seed[:])
	set := imagestest.InstallSetRoot(t, images.NewStore(state), "bench", "sha256:"+hex.EncodeToString(digest[:]),
		io.LimitReader(rand.NewChaCha8(seed), size), images.DefaultPieceSize)

	// Namespaces: a hub with the bridge, the server, the nodes. Interface
	// names carry this process's PID: veths are made in the root namespace.
	pid := os.Getpid() % 100000
	newNS := func(suffix string) *netns.NS {
		ns, err := netns.New(ctx, fmt.Sprintf("ds%d%c%s", pid, 'a'+run, suffix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		return ns
	}
	hub := newNS("h")
	if err := hub.Bridge(ctx, "br0", ""); err != nil {
		t.Fatal(err)
	}
	rate := fmt.Sprintf("%dmbit", c.mbit)
	burst := strconv.Itoa(max(32<<10, c.mbit*1_000_000/8/100)) // 10 ms of data
	shape := func(ns *netns.NS, dev string) {
		if out, err := ns.Command(ctx, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms").CombinedOutput(); err != nil {
			t.Fatalf("tc on %s: %v: %s", dev, err, out)
		}
	}
	link := func(ns *netns.NS, i int, addr string) (string, string) {
		a, b := fmt.Sprintf("d%da%d", pid, i), fmt.Sprintf("d%db%d", pid, i)
		if err := netns.Veth(ctx, ns, a, addr, hub, b, ""); err != nil {
			t.Fatal(err)
		}
		if err := hub.IP(ctx, "link", "set", b, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		shape(ns, a)
		shape(hub, b)
		return a, b
	}
	srv := newNS("s")
	srvDev, _ := link(srv, 0, "10.60.0.1/16")

	inv := &inventory.Inventory{}
	invMode := c.mode
	if invMode == "curl" {
		invMode = "http"
	}
	var nodes []benchNode
	for i := 1; i <= c.n; i++ {
		n := benchNode{name: fmt.Sprintf("d%03d", i), mac: fmt.Sprintf("52:54:00:60:%02x:%02x", i/256, i%256), ip: fmt.Sprintf("10.60.%d.%d", i/200, 10+i%200)}
		if err := inv.Put(inventory.Node{Name: n.name, MACs: []string{n.mac}, IP: n.ip, Settings: inventory.Settings{Image: "bench", Distribution: invMode}}); err != nil {
			t.Fatal(err)
		}
		n.ns = newNS(fmt.Sprintf("n%d", i))
		n.a, n.b = link(n.ns, i, n.ip+"/16")
		nodes = append(nodes, n)
	}
	if err := inv.Save(filepath.Join(state, "nodes.yaml")); err != nil {
		t.Fatal(err)
	}

	// Root images land on tmpfs, as in a node's initramfs.
	outDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", int64(c.n)*c.mib+64), "tmpfs", outDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", outDir).Run()

	serveLog, err := os.Create(filepath.Join(state, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serveLog.Close()
	stall := c.stall
	if stall == 0 {
		stall = 10
	}
	serveArgs := []string{bin, "--state", state, "serve", "--interface", srvDev, "--address", "10.60.0.1",
		"--dhcp=false", "--tftp=false", "--set", fmt.Sprintf("dist.stall=%ds", stall)}
	if c.fanout > 0 {
		serveArgs = append(serveArgs, "--set", "dist.fanout="+strconv.Itoa(c.fanout))
	}
	if c.stripes > 0 {
		serveArgs = append(serveArgs, "--set", "dist.stripes="+strconv.Itoa(c.stripes))
	}
	serve := startServe(srv, serveArgs, serveLog)
	defer serve.close()

	base := "http://10.60.0.1:8080"
	setURL := base + "/artifacts/bench/" + images.DigestHex(set.Manifest.ImageDigest) + "/"
	manifestURL, rootURL := setURL+images.ManifestFile, setURL+"rootfs.squashfs"
	// Ready once the server has verified the set (the first range request).
	if err := waitReady(ctx, nodes[0].ns, rootURL, 2*time.Minute); err != nil {
		t.Fatalf("%v:\n%s", err, readFile(serveLog.Name()))
	}
	tokens, err := nodetoken.LoadSecret(filepath.Join(state, "httpboot.secret"))
	if err != nil {
		t.Fatal(err)
	}
	egress := func() int64 {
		out, err := srv.Command(ctx, "cat", "/sys/class/net/"+srvDev+"/statistics/tx_bytes").Output()
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		return v
	}
	tx0 := egress()

	var mu sync.Mutex
	done := map[string]float64{}
	var hwm float64
	var wg sync.WaitGroup
	start := time.Now()
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	errs := make(chan error, len(nodes))
	s := &storm{t: t, ctx: ctx, nodes: nodes, srv: srv, hub: hub, bin: bin, base: base, cmds: map[string]*exec.Cmd{}, killed: map[string]bool{},
		rate: rate, burst: burst, out: outDir, serve: serve, rootURL: rootURL, serveLog: serveLog.Name()}
	if c.setup != nil {
		c.setup(s)
	}
	doneLine := cmp.Or(c.doneLine, "root image verified")
	for _, n := range nodes {
		args := []string{agent, "fetch", "--manifest", manifestURL, "--url", rootURL, "--out", filepath.Join(outDir, n.name+".img")}
		if c.mode == "curl" {
			args = []string{"curl", "-sf", "-o", filepath.Join(outDir, n.name+".img"), rootURL}
		}
		if c.mode == "tree" {
			args = append(args, "--dist", "tree", "--coordinator", base+"/api/v1/dist/", "--node", n.name,
				"--token", tokens.Make(n.name, n.mac, n.ip), "--stall", strconv.Itoa(stall), "--linger", "2m")
		}
		if c.nodeArgs != nil {
			args = c.nodeArgs(s, n)
		}
		cmd := n.ns.Command(agentCtx, args...)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.cmds[n.name] = cmd
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stderr)
			var tail []string
			for sc.Scan() {
				if strings.Contains(sc.Text(), doneLine) {
					mu.Lock()
					done[n.name] = time.Since(start).Seconds()
					hwm = max(hwm, peakRSSMiB(cmd.Process.Pid)) // `ip netns exec` execs the agent: its PID
					mu.Unlock()
				}
				tail = append(tail, sc.Text())
			}
			err := cmd.Wait()
			mu.Lock()
			if _, ok := done[n.name]; !ok && err == nil {
				done[n.name] = time.Since(start).Seconds() // http mode: the agent exits once verified
			}
			mu.Unlock()
			s.mu.Lock()
			killed := s.killed[n.name]
			s.mu.Unlock()
			if err != nil && !killed {
				errs <- fmt.Errorf("%s: %v: %s", n.name, err, strings.Join(tail[max(0, len(tail)-5):], "\n"))
			}
		}()
	}
	if c.fault != nil {
		c.fault(s)
	}
	wg.Wait()
	if c.after != nil {
		c.after(s)
	}
	close(errs)
	for err := range errs {
		t.Errorf("agent %v", err)
	}
	tx := egress() - tx0
	st, err := distStatus(ctx, srv, bin, base)
	if err != nil {
		t.Fatal(err)
	}
	var times []float64
	for name, v := range done {
		if !s.killed[name] {
			times = append(times, v)
		}
	}
	if want := c.n - len(s.killed); len(times) != want {
		t.Fatalf("%d of %d nodes hold a verified copy\n%s", len(times), want, readFile(serveLog.Name()))
	}
	slices.Sort(times)
	t.Logf("%s n=%d: completion times %.1f", c.mode, c.n, times)
	r := distRun{TLast: times[len(times)-1], P50: times[len(times)/2], Egress: tx, S: size,
		Floor: float64(size*8) / (float64(c.mbit) * 1e6)}
	r.R, r.EgressOverS, r.AgentHWMMiB = r.TLast/r.Floor, float64(tx)/float64(size), hwm
	r.Done, r.Status = done, st
	if c.mode == "tree" {
		peer, all := 0, 0
		for _, tr := range st {
			for _, n := range tr.Nodes {
				for src, k := range n.From {
					all += k
					if !strings.HasPrefix(src, "@") {
						peer += k
					}
				}
			}
		}
		if all > 0 {
			r.PeerFraction = float64(peer) / float64(all)
		}
	}
	return r
}

// peakRSSMiB is pid's VmHWM in MiB (0 if unknown). The root image itself is
// on tmpfs, written with pwrite: page cache, not the agent's RSS.
func peakRSSMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return lastN(string(b), 40)
}
