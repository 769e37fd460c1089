package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/imagestest"
)

// treeRig is a boot server for tree-mode tests on loopback: the root image
// (throttled per piece, so a transfer lasts long enough to join), its
// manifest, and the real coordinator (bootsvc/dist) without token checks.
type treeRig struct {
	img    []byte
	m      *manifest
	coord  *dist.Coordinator
	srv    *httptest.Server
	served atomic.Int64 // root image bytes the server sent
}

type anyNode struct{}

func (anyNode) Node(_ context.Context, name string) (inventory.Node, error) {
	if name == "" {
		return inventory.Node{}, store.ErrNotFound
	}
	return inventory.Node{Name: name}, nil
}

func newTreeRig(t *testing.T, size int, piece int64, perPiece time.Duration) *treeRig {
	r := &treeRig{coord: dist.New(dist.Config{}, nil, nil)}
	r.img, r.m = testImage(size, piece)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /root", func(w http.ResponseWriter, req *http.Request) {
		// The server's link: one piece per perPiece, also within one
		// streamed range.
		cw := &countWriter{ResponseWriter: w, piece: piece, perPiece: perPiece}
		http.ServeContent(cw, req, "", time.Time{}, bytes.NewReader(r.img))
		r.served.Add(cw.n)
	})
	mux.HandleFunc("GET /manifest.json", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(r.m) })
	mux.Handle(dist.Prefix, dist.NewAPI(r.coord, anyNode{}, nil, nil).Handler())
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

type countWriter struct {
	http.ResponseWriter
	n        int64
	piece    int64
	perPiece time.Duration
}

// Write sends p, sleeping perPiece before each piece's worth of bytes.
func (w *countWriter) Write(p []byte) (int, error) {
	sent := 0
	for len(p) > 0 {
		if w.n%w.piece == 0 {
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(w.perPiece)
		}
		k := min(int64(len(p)), w.piece-w.n%w.piece)
		n, err := w.ResponseWriter.Write(p[:k])
		w.n += int64(n)
		sent += n
		if err != nil {
			return sent, err
		}
		p = p[k:]
	}
	return sent, nil
}

func (r *treeRig) opts(node string) treeOpts {
	return treeOpts{coordinator: r.srv.URL + dist.Prefix, node: node, listen: "127.0.0.1:0", stall: 3 * time.Second, linger: 20 * time.Second}
}

// fetch runs a node's tree fetch in the background; the channel gets its result.
func (r *treeRig) fetch(ctx context.Context, t *testing.T, node string) (string, <-chan error) {
	out := filepath.Join(t.TempDir(), node+".img")
	errc := make(chan error, 1)
	go func() { errc <- fetchTree(ctx, r.srv.URL+"/root", r.m, out, r.opts(node), 3, 10*time.Millisecond) }()
	return out, errc
}

// node returns node's status, waiting until cond holds (bounded).
func (r *treeRig) node(t *testing.T, name string, cond func(dist.NodeStatus) bool) dist.NodeStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, tr := range r.coord.Status() {
			for _, n := range tr.Nodes {
				if n.Node == name && cond(n) {
					return n
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: condition not reached; status %+v", name, r.coord.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *treeRig) checkCopy(t *testing.T, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.img) {
		t.Errorf("%s differs from the image", path)
	}
}

func total(from map[string]int) int {
	n := 0
	for _, v := range from {
		n += v
	}
	return n
}

func wait(t *testing.T, errc <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: still running after 60 s", what)
	}
}

// TestTreeSecondNodeFromFirst: b joins while a is receiving and takes every
// piece from a, pipelined (a serves each piece once verified); the server
// sends the image about once.
func TestTreeSecondNodeFromFirst(t *testing.T) {
	const piece = 16 << 10
	r := newTreeRig(t, 40*piece+100, piece, 15*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	outA, errA := r.fetch(ctx, t, "a")
	r.node(t, "a", func(n dist.NodeStatus) bool { return n.Held >= 1 })
	outB, errB := r.fetch(ctx, t, "b")
	wait(t, errB, "b")
	wait(t, errA, "a")
	b := r.node(t, "b", func(n dist.NodeStatus) bool { return n.Done })
	pieces := len(r.m.Root.Pieces)
	if b.From["a"]*10 < pieces*9 || total(b.From) != pieces {
		t.Errorf("b got %v of %d pieces, want >= 90%% from a and each piece once", b.From, pieces)
	}
	if s := r.served.Load(); s > int64(len(r.img))*11/10 {
		t.Errorf("server sent %d bytes for a %d-byte image", s, len(r.img))
	}
	r.checkCopy(t, outA)
	r.checkCopy(t, outB)
}

// TestTreeSourceDies: a dies mid-transfer; b re-asks, resumes from its first
// missing piece at the server, and fetches no piece twice.
func TestTreeSourceDies(t *testing.T) {
	const piece = 16 << 10
	r := newTreeRig(t, 40*piece, piece, 15*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, killA := context.WithCancel(ctx)
	_, errA := r.fetch(actx, t, "a")
	r.node(t, "a", func(n dist.NodeStatus) bool { return n.Held >= 1 })
	outB, errB := r.fetch(ctx, t, "b")
	r.node(t, "b", func(n dist.NodeStatus) bool { return n.Held >= 10 })
	killA()
	<-errA
	wait(t, errB, "b")
	b := r.node(t, "b", func(n dist.NodeStatus) bool { return n.Done })
	if b.From["a"] < 10 || b.From[dist.ServerSource] == 0 || total(b.From) != len(r.m.Root.Pieces) {
		t.Errorf("b got %v, want some from a, the rest from the server, %d in all", b.From, len(r.m.Root.Pieces))
	}
	r.checkCopy(t, outB)
}

// TestTreeCorruptPeer: a seeds a copy with a flipped byte in piece 2; b
// detects it, the coordinator names and avoids a, and b's copy is right.
func TestTreeCorruptPeer(t *testing.T) {
	const piece = 16 << 10
	r := newTreeRig(t, 8*piece, piece, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bad := filepath.Join(t.TempDir(), "bad.img")
	corrupt := bytes.Clone(r.img)
	corrupt[2*piece+7] ^= 0xff
	os.WriteFile(bad, corrupt, 0o600)
	sctx, stopSeed := context.WithCancel(ctx)
	defer stopSeed()
	go seed(sctx, bad, r.m, r.opts("a"), time.Minute)
	r.node(t, "a", func(n dist.NodeStatus) bool { return n.Done })
	outB, errB := r.fetch(ctx, t, "b")
	wait(t, errB, "b")
	b := r.node(t, "b", func(n dist.NodeStatus) bool { return n.Done })
	a := r.node(t, "a", func(dist.NodeStatus) bool { return true })
	if !a.Bad || b.From["a"] != 2 || total(b.From) != 8 {
		t.Errorf("a bad=%v, b from %v: want a reported bad and b's pieces 0-1 from a, the rest elsewhere", a.Bad, b.From)
	}
	if st := r.coord.Status(); st[0].BadPieces != 1 {
		t.Errorf("bad pieces = %d, want 1", st[0].BadPieces)
	}
	r.checkCopy(t, outB)
}

// TestTreeStalledPeer: a source that accepts and sends nothing is left
// after the stall period.
func TestTreeStalledPeer(t *testing.T) {
	const piece = 16 << 10
	r := newTreeRig(t, 4*piece, piece, 0)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		<-req.Context().Done()
	}))
	t.Cleanup(hang.Close)
	if _, err := r.coord.Join(dist.JoinRequest{Transfer: r.m.ImageDigest, Pieces: 4, PieceSize: piece, Node: "s", Held: 4, PeerURL: hang.URL}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	outB, errB := r.fetch(ctx, t, "b")
	wait(t, errB, "b")
	if d := time.Since(start); d > 3*time.Second+5*time.Second {
		t.Errorf("b took %s with a 3 s stall period", d)
	}
	b := r.node(t, "b", func(n dist.NodeStatus) bool { return n.Done })
	if b.From["s"] != 0 || b.From[dist.ServerSource] != 4 {
		t.Errorf("b from %v, want all 4 from the server", b.From)
	}
	r.checkCopy(t, outB)
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in       string
		from, to int64
		ok       bool
	}{
		{"bytes=0-99", 0, 99, true},
		{"bytes=10-", 10, 999, true},
		{"bytes=999-999", 999, 999, true},
		{"bytes=5-1000", 0, 0, false},
		{"bytes=9-3", 0, 0, false},
		{"bytes=0-1,5-6", 0, 0, false},
		{"", 0, 0, false},
		{"items=0-1", 0, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			from, to, err := parseRange(tc.in, 1000)
			if (err == nil) != tc.ok || (tc.ok && (from != tc.from || to != tc.to)) {
				t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, ok %v", tc.in, from, to, err, tc.from, tc.to, tc.ok)
			}
		})
	}
}

// TestPeerServesOnlyVerified: a range inside held pieces is served at once;
// one reaching past them waits, and is served as soon as the piece is
// verified (the pipeline) or refused with 503 after the wait.
func TestPeerServesOnlyVerified(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "img")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{7}, 300))
	h := newHolder(f, 300, 100, 3, 1)
	srv := httptest.NewServer(h.handler(300 * time.Millisecond))
	t.Cleanup(srv.Close)
	get := func(rng string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/root", nil)
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("bytes=0-99"); code != http.StatusPartialContent {
		t.Errorf("held piece: %d", code)
	}
	if code := get("bytes=100-199"); code != http.StatusServiceUnavailable {
		t.Errorf("piece not held, nobody adds it: %d, want 503", code)
	}
	go func() { time.Sleep(50 * time.Millisecond); h.add("x") }()
	if code := get("bytes=100-199"); code != http.StatusPartialContent {
		t.Errorf("piece verified while waiting: %d, want 206", code)
	}
}

// newStripedRig is a treeRig whose coordinator also serves the finer piece
// table (derived from a real artifact set), in the given stripes.
func newStripedRig(t *testing.T, size int, piece, sub int64, stripes int, perSub time.Duration) *treeRig {
	st := images.NewStore(t.TempDir())
	img, _ := testImage(size, piece)
	e := imagestest.InstallSetRoot(t, st, "img", "sha256:"+hexSum([]byte("striped")), bytes.NewReader(img), piece)
	b, _ := json.Marshal(e.Manifest)
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	r := &treeRig{coord: dist.New(dist.Config{Stripes: stripes, SubPiece: sub}, nil, nil), img: img, m: m}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /root", func(w http.ResponseWriter, req *http.Request) {
		cw := &countWriter{ResponseWriter: w, piece: sub, perPiece: perSub}
		http.ServeContent(cw, req, "", time.Time{}, bytes.NewReader(r.img))
		r.served.Add(cw.n)
	})
	mux.Handle(dist.Prefix, dist.NewAPI(r.coord, anyNode{}, nil, nil).ServePieceTables(st).Handler())
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// TestTreeStriped: three nodes at once, two stripes of 64 KiB pieces: each
// node takes each stripe from its own source, the server sends the image
// about once, every piece arrives once and every copy is right.
func TestTreeStriped(t *testing.T) {
	const piece, sub = 256 << 10, 64 << 10
	r := newStripedRig(t, 8*piece+1000, piece, sub, 2, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var outs []string
	var errs []<-chan error
	for _, n := range []string{"a", "b", "c"} {
		out, errc := r.fetch(ctx, t, n)
		outs, errs = append(outs, out), append(errs, errc)
	}
	for i, errc := range errs {
		wait(t, errc, outs[i])
	}
	st := r.coord.Status()
	if len(st) != 1 || st[0].Stripes != 2 || st[0].PieceSize != sub {
		t.Fatalf("status %+v: want one transfer in 2 stripes of %d-byte pieces", st, sub)
	}
	pieces := st[0].Pieces
	if want := (len(r.img) + sub - 1) / sub; pieces != want {
		t.Errorf("%d pieces, want %d", pieces, want)
	}
	peers := 0
	for _, n := range st[0].Nodes {
		if !n.Done || total(n.From) != pieces {
			t.Errorf("%s: done %v, from %v: want all %d pieces once", n.Node, n.Done, n.From, pieces)
		}
		peers += total(n.From) - n.From[dist.ServerSource]
	}
	if s := r.served.Load(); s > int64(len(r.img))*13/10 {
		t.Errorf("server sent %d bytes for a %d-byte image (peers gave %d pieces): %+v", s, len(r.img), peers, st[0].Nodes)
	}
	for _, out := range outs {
		r.checkCopy(t, out)
	}
}
