package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
)

// outage is a coordinator API that can be taken down (503) and brought
// back empty, as a boot service restarted without its saved state.
type outage struct {
	mu    sync.Mutex
	coord *dist.Coordinator // nil: down
}

func (o *outage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	c := o.coord
	o.mu.Unlock()
	if c == nil {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	dist.NewAPI(c, anyNode{}, nil, nil).Handler().ServeHTTP(w, r)
}

func (o *outage) set(c *dist.Coordinator) {
	o.mu.Lock()
	o.coord = c
	o.mu.Unlock()
}

// TestTreeCoordinatorRestart: the coordinator goes away while a (done
// first) serves b, and comes back knowing nothing. a keeps serving b while
// it cannot reach the coordinator, so b gets every piece from a; both then
// resume, and the new coordinator knows them as done.
func TestTreeCoordinatorRestart(t *testing.T) {
	const piece = 16 << 10
	img, m := testImage(40*piece, piece)
	n := len(m.Root.Pieces)
	o := &outage{coord: dist.New(dist.Config{}, nil, nil)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /root", func(w http.ResponseWriter, req *http.Request) {
		// The server's link: 2 s for the image, also within one streamed range.
		http.ServeContent(&countWriter{ResponseWriter: w, piece: piece, perPiece: 50 * time.Millisecond}, req, "", time.Time{}, bytes.NewReader(img))
	})
	mux.Handle(dist.Prefix, o)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	opts := func(node string) treeOpts {
		return treeOpts{coordinator: srv.URL + dist.Prefix, node: node, listen: "127.0.0.1:0", stall: 3 * time.Second, linger: 20 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fetch := func(node string) (string, <-chan error) {
		out := filepath.Join(t.TempDir(), node+".img")
		errc := make(chan error, 1)
		go func() { errc <- fetchTree(ctx, srv.URL+"/root", m, out, opts(node), 3, 10*time.Millisecond) }()
		return out, errc
	}
	status := func(name string, cond func(dist.NodeStatus) bool) dist.NodeStatus {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			o.mu.Lock()
			c := o.coord
			o.mu.Unlock()
			if c == nil {
				continue
			}
			for _, tr := range c.Status() {
				for _, x := range tr.Nodes {
					if x.Node == name && cond(x) {
						return x
					}
				}
			}
		}
		t.Fatalf("node %s: condition not reached", name)
		return dist.NodeStatus{}
	}
	outA, errA := fetch("a")
	status("a", func(x dist.NodeStatus) bool { return x.Held >= 1 })
	outB, errB := fetch("b")
	status("b", func(x dist.NodeStatus) bool { return x.Source == "a" && x.Held >= n/2 })
	o.set(nil)                               // down while a finishes, b trailing it by about a piece
	time.Sleep(2 * time.Second)              // the outage
	o.set(dist.New(dist.Config{}, nil, nil)) // back, empty
	b := status("b", func(x dist.NodeStatus) bool { return x.Done })
	status("a", func(x dist.NodeStatus) bool { return x.Done })
	wait(t, errB, "b")
	wait(t, errA, "a")
	if b.From["a"] != n || total(b.From) != n {
		t.Errorf("b received %v, want all %d pieces from a (a serves on while the coordinator is away)", b.From, n)
	}
	for _, out := range []string{outA, outB} {
		if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
			t.Errorf("%s differs from the image", out)
		}
	}
}
