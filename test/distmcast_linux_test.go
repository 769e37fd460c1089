package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/imgctl/imgctl/internal/vm"
)

// mcastCase is one multicast storm: n nodes on links of mbit Mbit/s, an
// S-byte image, loss percent random loss on every link towards a receiver.
type mcastCase struct {
	n, mbit int
	mib     int64
	loss    float64
	// rate is the sender's rate as a fraction of the link rate (the
	// inventory's multicast.rate); 0 = 0.96, what fits a tbf-shaped link
	// with the Ethernet header on top.
	rate float64
	// late nodes (the last ones) start once the carousel sent half the image.
	late int
	// udpcast: run Debian's udp-sender / udp-receiver instead of imgctl
	// (the baseline), same harness, same rate.
	udpcast bool
}

// mcastRun is what one storm measured.
type mcastRun struct {
	TLast, P50        float64 // seconds from start to the last / median node holding a verified copy
	Egress            int64   // bytes the server's link sent
	S                 int64
	Floor             float64 // S/B
	R, EgressOverS    float64
	RepairBytes       int64   // HTTP repair bytes, all nodes
	RepairOverS       float64 // per node, mean
	MulticastFraction float64 // share of all pieces completed from datagrams alone
	Passes            int
	AgentHWMMiB       float64
	Status            []dist.MulticastStatus
}

const mcastGroup = "239.255.74.1"

// runMulticast builds the harness for c (as runDist does: a hub bridge,
// the server and n nodes in namespaces, tbf at B on both ends of every
// veth), runs the storm once and tears it down. The bridge's IGMP snooping
// is off, so the test does not depend on a querier or on host defaults.
func runMulticast(t *testing.T, bin, agent string, c mcastCase, run int) mcastRun {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	state := t.TempDir()
	size := c.mib << 20
	var seed [32]byte
	copy(seed[:], fmt.Sprintf("mcast-bench-%d", size))
	digest := sha256.Sum256(seed[:])
	set := imagestest.InstallSetRoot(t, images.NewStore(state), "bench", "sha256:"+hex.EncodeToString(digest[:]),
		io.LimitReader(rand.NewChaCha8(seed), size), images.DefaultPieceSize)

	pid := os.Getpid() % 100000
	newNS := func(suffix string) *netns.NS {
		ns, err := netns.New(ctx, fmt.Sprintf("dm%d%c%s", pid, 'a'+run, suffix))
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
	if err := hub.IP(ctx, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"); err != nil {
		t.Fatal(err)
	}
	rate := fmt.Sprintf("%dmbit", c.mbit)
	burst := strconv.Itoa(max(32<<10, c.mbit*1_000_000/8/100))
	tc := func(ns *netns.NS, args ...string) {
		if out, err := ns.Command(ctx, append([]string{"tc", "qdisc", "add"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("tc %s: %v: %s", args, err, out)
		}
	}
	link := func(ns *netns.NS, i int, addr string, lossy bool) string {
		a, b := fmt.Sprintf("m%da%d", pid, i), fmt.Sprintf("m%db%d", pid, i)
		if err := netns.Veth(ctx, ns, a, addr, hub, b, ""); err != nil {
			t.Fatal(err)
		}
		if err := hub.IP(ctx, "link", "set", b, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		tc(ns, "dev", a, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms")
		tc(hub, "dev", b, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms")
		if lossy && c.loss > 0 {
			// Random loss of every packet reaching the receiver (datagrams
			// and repairs alike). This kernel has no sch_netem; the
			// statistic match drops the same way, independently per node.
			if out, err := ns.Command(ctx, "iptables", "-A", "INPUT", "-i", a, "-m", "statistic", "--mode", "random",
				"--probability", fmt.Sprintf("%g", c.loss/100), "-j", "DROP").CombinedOutput(); err != nil {
				t.Fatalf("iptables loss on %s: %v: %s", a, err, out)
			}
		}
		return a
	}
	srv := newNS("s")
	srvDev := link(srv, 0, "10.61.0.1/16", false)

	frac := c.rate
	if frac == 0 {
		frac = 0.96
	}
	mrate := fmt.Sprintf("%dkbit", int(float64(c.mbit)*1000*frac))
	inv := &inventory.Inventory{}
	var nodes []benchNode
	for i := 1; i <= c.n; i++ {
		n := benchNode{name: fmt.Sprintf("m%03d", i), mac: fmt.Sprintf("52:54:00:61:%02x:%02x", i/256, i%256), ip: fmt.Sprintf("10.61.%d.%d", i/200, 10+i%200)}
		if err := inv.Put(inventory.Node{Name: n.name, MACs: []string{n.mac}, IP: n.ip, Settings: inventory.Settings{Image: "bench",
			Distribution: inventory.DistMulticast, Multicast: &inventory.Multicast{Group: mcastGroup, Rate: mrate}}}); err != nil {
			t.Fatal(err)
		}
		n.ns = newNS(fmt.Sprintf("n%d", i))
		n.a = link(n.ns, i, n.ip+"/16", true)
		nodes = append(nodes, n)
	}
	if err := inv.Save(filepath.Join(state, "nodes.yaml")); err != nil {
		t.Fatal(err)
	}
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
	serveCmd := srv.Command(context.Background(), bin, "--state", state, "serve", "--interface", srvDev, "--address", "10.61.0.1",
		"--dhcp=false", "--tftp=false")
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- vm.RunUntil(srvCtx, serveCmd, serveLog) }()
	defer func() { stopSrv(); <-srvDone }()

	base := "http://10.61.0.1:8080"
	setURL := base + "/artifacts/bench/" + images.DigestHex(set.Manifest.ImageDigest) + "/"
	manifestURL, rootURL := setURL+images.ManifestFile, setURL+"rootfs.squashfs"
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if err := nodes[0].ns.Command(ctx, "curl", "-sf", "-o", "/dev/null", "-r", "0-0", rootURL).Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imgctl serve not ready:\n%s", readFile(serveLog.Name()))
		}
		time.Sleep(200 * time.Millisecond)
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

	var sender *exec.Cmd
	if c.udpcast {
		// udp-sender waits for c.n receivers, then streams at the rate; the
		// clock starts at the same point as imgctl's (receivers started).
		imgFile := filepath.Join(set.Dir, set.Manifest.Artifacts[images.RootFS].File)
		sender = srv.Command(ctx, "udp-sender", "--file", imgFile, "--interface", srvDev, "--nokbd", "--min-receivers", strconv.Itoa(c.n),
			"--max-bitrate", fmt.Sprintf("%.0fm", float64(c.mbit)*frac), "--mcast-rdv-address", mcastGroup,
			"--mcast-data-address", "239.255.74.2", "--ttl", "1", "--no-progress")
		var slog strings.Builder
		sender.Stderr, sender.Stdout = &slog, &slog
		if err := sender.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { sender.Process.Kill(); sender.Wait() }()
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
	startNode := func(n benchNode) {
		out := filepath.Join(outDir, n.name+".img")
		args := []string{agent, "fetch", "--manifest", manifestURL, "--url", rootURL, "--out", out,
			"--dist", "multicast", "--coordinator", base + "/api/v1/dist/", "--node", n.name,
			"--token", tokens.Make(n.name, n.mac, n.ip), "--group", mcastGroup, "--stall", "10"}
		if c.udpcast {
			args = []string{"udp-receiver", "--file", out, "--interface", n.a, "--nokbd", "--mcast-rdv-address", mcastGroup, "--no-progress"}
		}
		cmd := n.ns.Command(agentCtx, args...)
		stderr, _ := cmd.StderrPipe()
		cmd.Stdout = cmd.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stderr)
			var tail []string
			for sc.Scan() {
				if strings.Contains(sc.Text(), "root image verified") {
					mu.Lock()
					done[n.name] = time.Since(start).Seconds()
					hwm = max(hwm, peakRSSMiB(cmd.Process.Pid))
					mu.Unlock()
				}
				tail = append(tail, sc.Text())
			}
			err := cmd.Wait()
			if c.udpcast && err == nil {
				// udp-receiver has no verification: check the copy here.
				if err = checkSum(out, set.Manifest.Artifacts[images.RootFS].SHA256); err == nil {
					mu.Lock()
					done[n.name] = time.Since(start).Seconds()
					mu.Unlock()
				}
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %v: %s", n.name, err, strings.Join(tail[max(0, len(tail)-5):], "\n"))
			}
		}()
	}
	for i, n := range nodes {
		if i == len(nodes)-c.late {
			// Late: once the carousel has sent half the image, so the node
			// has missed whole pieces, however slow the host runs.
			for ctx.Err() == nil && mcastSent(ctx, srv, bin, base) < size/2 {
				sleep(ctx, 100*time.Millisecond)
			}
		}
		startNode(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("node %v", err)
	}
	tx := egress() - tx0
	var st []dist.MulticastStatus
	if !c.udpcast {
		out, err := srv.Command(ctx, bin, "-o", "json", "dist", "status", "--multicast", "--server", base).Output()
		if err != nil {
			t.Fatalf("dist status --multicast: %v", err)
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("dist status --multicast: %v: %s", err, out)
		}
	}
	var times []float64
	for _, v := range done {
		times = append(times, v)
	}
	if len(times) != c.n {
		t.Fatalf("%d of %d nodes hold a verified copy\n%s", len(times), c.n, readFile(serveLog.Name()))
	}
	slices.Sort(times)
	t.Logf("multicast n=%d loss=%g%% udpcast=%v: completion times %.1f", c.n, c.loss, c.udpcast, times)
	r := mcastRun{TLast: times[len(times)-1], P50: times[len(times)/2], Egress: tx, S: size,
		Floor: float64(size*8) / (float64(c.mbit) * 1e6), AgentHWMMiB: hwm, Status: st}
	r.R, r.EgressOverS = r.TLast/r.Floor, float64(tx)/float64(size)
	if len(st) == 1 {
		mc, all := 0, 0
		for _, n := range st[0].Nodes {
			r.RepairBytes += n.RepairBytes
			mc += n.Multicast
			all += n.Multicast + n.Repaired
		}
		r.RepairOverS = float64(r.RepairBytes) / float64(c.n) / float64(size)
		r.Passes = st[0].Passes
		if all > 0 {
			r.MulticastFraction = float64(mc) / float64(all)
		}
	}
	return r
}

func checkSum(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s, want %s", path, got, want)
	}
	return nil
}

// mcastSent is the bytes the carousel has sent so far (0 if unknown).
func mcastSent(ctx context.Context, srv *netns.NS, bin, base string) int64 {
	out, err := srv.Command(ctx, bin, "-o", "json", "dist", "status", "--multicast", "--server", base).Output()
	if err != nil {
		return 0
	}
	var st []dist.MulticastStatus
	if json.Unmarshal(out, &st) != nil || len(st) == 0 {
		return 0
	}
	return st[0].BytesSent
}
