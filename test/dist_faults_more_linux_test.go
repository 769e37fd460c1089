package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/testenv"
)

// The tree's fault tests beyond TestTreeFaults, in the same harness (real
// `imgctl serve`, real agents in namespaces, tbf links): a tenth of the
// nodes killed at once, a peer that serves a corrupted piece, and serve
// itself crashed and started again mid-transfer.

// waitStatus polls the coordinator (bounded) until cond holds for the first
// transfer's nodes.
func waitStatus(t *testing.T, s *storm, what string, cond func([]dist.NodeStatus) bool) []dist.NodeStatus {
	t.Helper()
	return waitTransfer(t, s, what, func(tr dist.TransferStatus) bool { return cond(tr.Nodes) }).Nodes
}

// waitTransfer is waitStatus for conditions that need the transfer's piece
// size too (tree mode passes on sub-pieces, not the manifest's pieces).
func waitTransfer(t *testing.T, s *storm, what string, cond func(dist.TransferStatus) bool) dist.TransferStatus {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st, err := distStatus(s.ctx, s.srv, s.bin, s.base)
		if err == nil && len(st) > 0 && cond(st[0]) {
			return st[0]
		}
	}
	t.Fatalf("no status where %s", what)
	return dist.TransferStatus{}
}

// checkCopies: every node but skip holds a copy whose sha256 is the
// manifest's (read from the server), received with each piece once.
func checkCopies(t *testing.T, s *storm, skip map[string]bool) {
	t.Helper()
	status, err := distStatus(s.ctx, s.srv, s.bin, s.base)
	if err != nil || len(status) == 0 {
		t.Fatalf("dist status: %v", err)
	}
	out, err := s.srv.Command(s.ctx, "curl", "-sf", strings.TrimSuffix(s.rootURL, "rootfs.squashfs")+images.ManifestFile).Output()
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var m images.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	want := m.Artifacts["rootfs"].SHA256
	pieces := status[0].Pieces
	for _, n := range status[0].Nodes {
		if skip[n.Node] {
			continue
		}
		if !n.Done || total(n.From) != pieces {
			t.Errorf("%s: done %v, received %v: want all %d pieces, each once", n.Node, n.Done, n.From, pieces)
		}
		if got := fileSHA256(t, filepath.Join(s.out, n.Node+".img")); got != want {
			t.Errorf("%s: copy sha256 %s, manifest says %s", n.Node, got, want)
		}
	}
}

func fileSHA256(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestTreeKillTenth kills 10% of the nodes at once mid-transfer, each one
// serving a child: every other node must end with a verified copy, and the
// storm's R may grow by at most 20% over the same storm without kills, run
// just before in the same harness.
func TestTreeKillTenth(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	const n, kills = 20, 2
	c := distCase{mode: "tree", n: n, mbit: 50, mib: 64, fanout: 1, stall: 3}
	base := runDist(t, bin, agent, c, 0)
	t.Logf("without kills: T_last %.1fs (S/B %.1fs), R %.2f", base.TLast, base.Floor, base.R)

	var victims []string
	c.fault = func(s *storm) {
		nodes := waitStatus(t, s, "a tenth of the nodes serve a child a third of the way", func(ns []dist.NodeStatus) bool {
			victims = victims[:0]
			var sum, pieces int
			parents := map[string]bool{}
			for _, x := range ns {
				sum += x.Held
				if x.Source != "" && x.Source != dist.ServerSource {
					parents[x.Source] = true
				}
			}
			if len(ns) < n {
				return false
			}
			pieces = int(c.mib << 20 / images.DefaultPieceSize)
			if sum < n*pieces/3 {
				return false
			}
			for _, x := range ns {
				if parents[x.Node] && !x.Done && len(victims) < kills {
					victims = append(victims, x.Node)
				}
			}
			return len(victims) == kills
		})
		for _, v := range victims {
			s.kill(v)
		}
		t.Logf("killed %v; status then: %s", victims, brief(nodes))
	}
	c.after = func(s *storm) {
		skip := map[string]bool{}
		for _, v := range victims {
			skip[v] = true
		}
		checkCopies(t, s, skip)
	}
	r := runDist(t, bin, agent, c, 1)
	t.Logf("with %d of %d nodes killed: T_last %.1fs, R %.2f (%.0f%% over %.2f)", kills, n, r.TLast, r.R, 100*(r.R/base.R-1), base.R)
	if r.R > 1.2*base.R {
		t.Errorf("R %.2f with kills, %.2f without: grew by %.0f%%, want <= 20%%", r.R, base.R, 100*(r.R/base.R-1))
	}
}

// brief is a status in one line: node:held<-source.
func brief(ns []dist.NodeStatus) string {
	var b []string
	for _, n := range ns {
		b = append(b, fmt.Sprintf("%s:%d<-%s", n.Node, n.Held, n.Source))
	}
	return strings.Join(b, " ")
}

// TestTreeCorruptPeerServe corrupts pieces in a running peer's root image
// file on disk (the file it serves its children from), pieces it verified
// and its children have not fetched yet: a child detects it, the
// coordinator names the peer (status, log, /metrics) and hands it out no
// more, the pieces come from elsewhere, and every other copy is right.
func TestTreeCorruptPeerServe(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	var parent, child string
	// Fan-out 2: a parent receives at B and sends at B/2 to each child, so
	// it runs ahead of them and holds pieces they do not.
	c := distCase{mode: "tree", n: 4, mbit: 40, mib: 48, fanout: 2, stall: 3, fault: func(s *storm) {
		var from, to int
		var piece int64
		// The child streams its range: what it has in flight, in its socket
		// buffers included, stays within about 1 MiB past what it holds.
		const inFlight = 1 << 20
		waitTransfer(t, s, "a parent well ahead of its child", func(tr dist.TransferStatus) bool {
			held := map[string]int{}
			for _, x := range tr.Nodes {
				held[x.Node] = x.Held
			}
			skip := int(inFlight / tr.PieceSize)
			// Only pieces of manifest pieces the parent has checked whole:
			// it reads each one back once all its sub-pieces are in, and
			// would rightly refuse its own copy otherwise.
			per := int(images.DefaultPieceSize / tr.PieceSize)
			for _, x := range tr.Nodes {
				if p, ok := held[x.Source]; ok && !x.Done && p/per*per >= x.Held+skip+3 {
					parent, child, from, to, piece = x.Source, x.Node, x.Held+skip+1, p/per*per, tr.PieceSize
					return true
				}
			}
			return false
		})
		f, err := os.OpenFile(filepath.Join(s.out, parent+".img"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// The last KiB of each piece: whatever a child has in flight, it
		// has not read that far.
		junk := make([]byte, 1024)
		for i := range junk {
			junk[i] = 0xa5
		}
		for p := from; p < to; p++ {
			if _, err := f.WriteAt(junk, int64(p+1)*piece-int64(len(junk))); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("corrupted pieces %d-%d in %s's file (its child %s)", from, to-1, parent, child)
	}}
	c.after = func(s *storm) { checkNamed(t, s, parent, child) }
	r := runDist(t, bin, agent, c, 0)
	t.Logf("T_last %.1fs (S/B %.1fs), R %.2f", r.TLast, r.Floor, r.R)
}

// checkNamed: parent, which served corrupted pieces, is reported by name in
// the status, serve's log and /metrics, hands out no more pieces, and every
// other copy is right.
func checkNamed(t *testing.T, st *storm, parent, child string) {
	status, err := distStatus(st.ctx, st.srv, st.bin, st.base)
	if err != nil || len(status) == 0 {
		t.Fatalf("dist status: %v", err)
	}
	tr := status[0]
	if tr.BadPieces == 0 {
		t.Error("no bad piece reported")
	}
	for _, n := range tr.Nodes {
		if n.Node == parent && !n.Bad {
			t.Errorf("%s served corrupted pieces and is not marked bad", parent)
		}
		// A finished node keeps its last source in the status; only one
		// still fetching counts (a stream that never met a bad piece runs
		// to its end, every piece verified).
		if n.Node != parent && !n.Done && n.Source == parent {
			t.Errorf("%s still fetches from the bad peer %s", n.Node, parent)
		}
		if n.Node == child && n.From[parent] == total(n.From) {
			t.Errorf("%s took every piece from %s", child, parent)
		}
	}
	log := readAll(st.serveLog)
	if !strings.Contains(log, "failed verification") || !strings.Contains(log, "peer="+parent) {
		t.Errorf("serve's log does not name %s as the peer that sent a bad piece:\n%s", parent, lastN(log, 20))
	}
	metrics, err := st.srv.Command(st.ctx, "curl", "-sf", st.base+"/metrics").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(strings.Split(string(metrics), "\n"), func(l string) bool {
		return strings.HasPrefix(l, "imgctl_dist_bad_pieces_total{") && !strings.HasSuffix(l, " 0")
	}) {
		t.Error("/metrics: imgctl_dist_bad_pieces_total is 0")
	}
	// The parent's own file is the one corrupted on purpose.
	checkCopies(t, st, map[string]bool{parent: true})
}

// TestTreeServeRestart crashes `imgctl serve` (SIGKILL) mid-transfer and
// starts it again over the same state after a few seconds: nodes fetching
// from peers go on while it is down, the restarted coordinator knows the
// tree (its saved state, and the nodes' resumes), and every node completes
// with a verified copy, each piece received once.
func TestTreeServeRestart(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	const down = 4 * time.Second
	var st *storm
	var before, after []dist.NodeStatus
	var peerGain int64
	c := distCase{mode: "tree", n: 5, mbit: 40, mib: 48, fanout: 1, stall: 3, fault: func(s *storm) {
		st = s
		// Under way for a few seconds, so the coordinator has saved the
		// tree (at most every second) before the crash.
		before = waitTransfer(t, s, "the chain is under way", func(tr dist.TransferStatus) bool {
			for _, x := range tr.Nodes {
				if x.Source != dist.ServerSource && x.Source != "" && int64(x.Held)*tr.PieceSize >= 2*images.DefaultPieceSize {
					return len(tr.Nodes) == 5
				}
			}
			return false
		}).Nodes
		if err := s.serve.crash(); err != nil {
			t.Fatal(err)
		}
		t.Logf("serve killed; status before: %s", brief(before))
		// What the nodes write while serve is away, from their files (the
		// agent writes pieces in order: the size is what it holds).
		sizes := func() map[string]int64 {
			m := map[string]int64{}
			for _, x := range before {
				if fi, err := os.Stat(filepath.Join(s.out, x.Node+".img")); err == nil {
					m[x.Node] = fi.Size()
				}
			}
			return m
		}
		at := sizes()
		time.Sleep(down) // the outage itself
		for node, size := range sizes() {
			if src := sourceOf(before, node); src != dist.ServerSource {
				peerGain += size - at[node]
			}
		}
		s.serve.start()
		if err := waitReady(s.ctx, s.srv, s.rootURL, time.Minute); err != nil {
			t.Fatalf("%v:\n%s", err, readFile(s.serveLog))
		}
		after = waitStatus(t, s, "the restarted coordinator lists every node", func(ns []dist.NodeStatus) bool { return len(ns) == 5 })
		t.Logf("serve back; status after: %s", brief(after))
	}}
	c.after = func(s *storm) { checkCopies(t, s, nil) }
	r := runDist(t, bin, agent, c, 0)
	t.Logf("T_last %.1fs (S/B %.1fs), R %.2f, peers %.0f%%", r.TLast, r.Floor, r.R, 100*r.PeerFraction)
	log := readAll(st.serveLog)
	if !strings.Contains(log, "restored tree transfers") {
		t.Errorf("the restarted serve did not restore the transfers:\n%s", lastN(log, 30))
	}
	// While serve was down, nodes fed by peers kept receiving.
	t.Logf("peer-fed nodes wrote %d MiB while serve was down", peerGain>>20)
	if peerGain < images.DefaultPieceSize {
		t.Errorf("peer-fed nodes wrote %d bytes while serve was down (%s), want at least a piece; status before %s", peerGain, down, brief(before))
	}
	if r.PeerFraction < 0.6 {
		t.Errorf("%.0f%% of the pieces came from peers, want most", 100*r.PeerFraction)
	}
}

func sourceOf(ns []dist.NodeStatus, node string) string {
	for _, x := range ns {
		if x.Node == node {
			return x.Source
		}
	}
	return ""
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
