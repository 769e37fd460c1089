package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/vm"
)

// multicastBootVM is TestTreeBootVM's multicast subtest, on its fixtures
// (artifact set, imgctl binary, SSH key): two QEMU nodes boot the same
// image at once in multicast mode through one `imgctl serve`. Both must
// reach `booted` with the image's digest, and the service must count most
// pieces as completed from the carousel's datagrams (the rest repaired
// over HTTP). The boot bridge's IGMP snooping is turned off in the test
// setup, so delivery does not depend on a querier or on host defaults.
func multicastBootVM(t *testing.T, bin string, set *images.Entry, pubKey string) {
	const mac2, ip2, server = "52:54:00:57:00:12", "10.57.0.12", "http://10.57.0.1:8080"
	const memMiB = 1536
	a := newBootNode(t, bin, set, "mca01", "52:54:00:57:00:11", "10.57.0.11", "live", pubKey)
	b := &bootNode{bin: bin, state: a.state, name: "mca02", mac: mac2, ip: ip2}
	for _, args := range [][]string{
		{"node", "add", b.name, "--mac", mac2, "--ip", ip2, "--image", set.Manifest.Name, "--mode", "live", "--ssh-key-file", pubKey},
		// Well under what an emulated (TCG) guest takes in: it has to
		// assemble and hash pieces while receiving.
		{"node", "set", "mca0[1-2]", "--distribution", "multicast", "--multicast-group", "239.255.74.9", "--multicast-rate", "30mbit"},
	} {
		if out, err := exec.Command(bin, append([]string{"--state", a.state, "-q"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", args, err, out)
		}
	}
	bootSlots <- struct{}{}
	bootSlots <- struct{}{}
	defer func() { <-bootSlots; <-bootSlots }()

	st, err := filestore.Open(context.Background(), filestore.Options{StateDir: a.state})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	accel := (&vm.Prober{}).Probe(context.Background())
	consoleB := filepath.Join(a.state, "vm", b.name, "console.log")
	if err := os.MkdirAll(filepath.Dir(consoleB), 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bootNS *netns.NS
	start := time.Now()
	serve := func(ctx context.Context, ns *netns.NS, argv []string, log io.Writer) error {
		for i := range argv {
			if argv[i] == "--inventory" && i+1 < len(argv) {
				argv[i+1] = filepath.Join(a.state, "nodes.yaml")
			}
		}
		mu.Lock()
		bootNS = ns
		mu.Unlock()
		if err := ns.IP(ctx, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"); err != nil {
			return err
		}
		stop, err := startSecondMachine(ctx, ns, vm.Machine{MAC: mac2, Tap: "tap1", SerialLog: consoleB, Accel: accel.Accel, MemoryMiB: memMiB})
		if err != nil {
			return err
		}
		defer stop()
		return vm.ServeProcess(argv, log)(ctx, ns)
	}
	var status []dist.MulticastStatus
	var metrics string
	onBooted := func(ctx context.Context, _ vmboot.BootedNode) error {
		if err := b.waitState(ctx, nodestate.Booted, start); err != nil {
			return err
		}
		mu.Lock()
		ns := bootNS
		mu.Unlock()
		out, err := ns.Command(ctx, bin, "-o", "json", "dist", "status", "--multicast", "--server", server).Output()
		if err != nil {
			return fmt.Errorf("dist status --multicast: %w", err)
		}
		if err := json.Unmarshal(out, &status); err != nil {
			return fmt.Errorf("dist status --multicast %s: %w", out, err)
		}
		m, err := ns.Command(ctx, "curl", "-sf", server+"/metrics").Output()
		metrics = string(m)
		return err
	}
	res, err := vmboot.Boot(context.Background(), vmboot.Options{
		StateDir: a.state, Nodes: st, States: st, HostKeys: st, Exe: bin, MemoryMiB: memMiB,
		Accel:    func(context.Context) vm.AccelChoice { return accel },
		Serve:    serve,
		OnBooted: onBooted,
		Timeout:  15 * time.Minute,
	}, a.name)
	t.Logf("%s: accel %s, booted %v after %.1fs", a.name, res.Accel, res.Booted, res.Seconds)
	if err != nil {
		consoleTail, _ := os.ReadFile(consoleB)
		t.Fatalf("multicast boot: %v\n%s\n--- %s console:\n%s", err, a.tails(t), b.name, lastN(string(consoleTail), 30))
	}
	if !res.Booted || res.Digest != set.Manifest.ImageDigest {
		t.Errorf("%s: booted %v digest %s, want %s", a.name, res.Booted, res.Digest, set.Manifest.ImageDigest)
	}
	if n, err := st.State(context.Background(), b.name); err != nil || n.State != nodestate.Booted || n.ImageDigest != set.Manifest.ImageDigest {
		t.Errorf("%s: state %+v (%v), want booted with digest %s", b.name, n, err, set.Manifest.ImageDigest)
	}
	pieces := len(set.Manifest.Root.Pieces)
	if len(status) != 1 || len(status[0].Nodes) != 2 {
		t.Fatalf("multicast status: %+v", status)
	}
	s := status[0]
	t.Logf("multicast status: %d bytes sent in %d full passes; nodes %+v", s.BytesSent, s.Passes, s.Nodes)
	viaMcast := 0
	for _, n := range s.Nodes {
		if !n.Done || n.Held != pieces || n.Multicast+n.Repaired != pieces {
			t.Errorf("%s: %+v, want all %d pieces, each counted once, and done", n.Node, n, pieces)
		}
		viaMcast += n.Multicast
	}
	frac := float64(viaMcast) / float64(2*pieces)
	t.Logf("%.0f%% of the %d pieces the two nodes hold came from multicast datagrams alone", 100*frac, 2*pieces)
	if frac <= 0.5 {
		t.Errorf("only %.0f%% of pieces by multicast: want most", 100*frac)
	}
	if !strings.Contains(metrics, "imgctl_dist_multicast_sent_bytes_total{") {
		t.Errorf("/metrics has no imgctl_dist_multicast_sent_bytes_total")
	}
}
