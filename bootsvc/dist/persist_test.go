package dist

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestPersistRestore: a coordinator's tree (sources, counts, bad peers,
// finished nodes) written by Persist comes back whole in a new coordinator,
// and the restored nodes are alive, so they are handed out as sources.
func TestPersistRestore(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	c := New(Config{Fanout: 2, Stall: 5 * time.Second}, nil, now)
	join := func(c *Coordinator, node string, held int, bad []BadPiece) Source {
		t.Helper()
		src, err := c.Join(JoinRequest{Transfer: "sha256:x", Pieces: 10, PieceSize: 4, Node: node, Held: held, Bad: bad,
			PeerURL: "http://" + node + "/root", Topology: Topology{Rack: "r1"}})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	join(c, "a", 0, nil)
	join(c, "b", 0, nil)
	if _, err := c.Report(Progress{Transfer: "sha256:x", Node: "a", Held: 4, From: map[string]int{ServerSource: 4}}); err != nil {
		t.Fatal(err)
	}
	join(c, "c", 0, nil)
	join(c, "d", 1, []BadPiece{{Peer: "b", Piece: 1}})

	path := filepath.Join(t.TempDir(), StateFile)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Persist writes once more when its context ends
	if err := c.Persist(ctx, path); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour - time.Minute) // the old leases are long gone; the restored ones are new
	r := New(Config{Fanout: 2, Stall: 5 * time.Second}, nil, now)
	if n, err := r.Restore(path); err != nil || n != 1 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	before, after := c.Status(), r.Status()
	for i := range before[0].Nodes {
		before[0].Nodes[i].Seconds, after[0].Nodes[i].Seconds, after[0].Nodes[i].Rate, before[0].Nodes[i].Rate = 0, 0, 0, 0
		if !after[0].Nodes[i].Alive {
			t.Errorf("restored %s is not alive", after[0].Nodes[i].Node)
		}
		after[0].Nodes[i].Alive = before[0].Nodes[i].Alive
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("restored status\n%+v\nwant\n%+v", after, before)
	}
	// The restored tree schedules as the old one would: a is full (b, c),
	// b is bad, so e goes to c or d.
	if src := join(r, "e", 0, nil); src.Peer != "c" && src.Peer != "d" {
		t.Errorf("e after restore: source %q, want c or d", src.Peer)
	}
}

func TestRestoreRefuses(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"not json", "{"},
		{"other version", `{"version":9,"transfers":[]}`},
		{"no pieces", `{"version":1,"transfers":[{"transfer":"x","pieces":0,"piece_size":4}]}`},
		{"held too many", `{"version":1,"transfers":[{"transfer":"x","pieces":2,"piece_size":4,"nodes":[{"node":"a","held":3}]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.json")
			os.WriteFile(path, []byte(tc.body), 0o600)
			c := New(Config{}, nil, nil)
			if _, err := c.Restore(path); err == nil {
				t.Error("Restore: no error")
			}
			if len(c.Status()) != 0 {
				t.Error("a refused file left transfers behind")
			}
		})
	}
	if n, err := New(Config{}, nil, nil).Restore(filepath.Join(t.TempDir(), "none")); n != 0 || err != nil {
		t.Errorf("missing file: %d, %v", n, err)
	}
}

// TestResume: a node the coordinator does not know, already fetching from a
// fit source, keeps it; an unfit one (bad, unknown) gets Join's answer.
func TestResume(t *testing.T) {
	for _, tc := range []struct{ name, current, want string }{
		{"keeps a live peer", "b", "b"},
		{"keeps the server", ServerSource, ServerSource},
		{"a bad peer is replaced", "bad", "a"},
		{"a peer not known yet is kept", "later", "later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{Fanout: 4}, nil, nil)
			for _, n := range []string{"a", "b", "bad", "x"} {
				if _, err := c.Join(JoinRequest{Transfer: "t", Pieces: 10, PieceSize: 4, Node: n, PeerURL: "http://" + n}); err != nil {
					t.Fatal(err)
				}
			}
			c.Join(JoinRequest{Transfer: "t", Pieces: 10, PieceSize: 4, Node: "x", Bad: []BadPiece{{Peer: "bad", Piece: 0}}})
			src, err := c.Resume(JoinRequest{Transfer: "t", Pieces: 10, PieceSize: 4, Node: "new", Held: 3, PeerURL: "http://new"}, tc.current)
			if err != nil {
				t.Fatal(err)
			}
			if src.Peer != tc.want {
				t.Errorf("source %q, want %q", src.Peer, tc.want)
			}
			for _, n := range c.Status()[0].Nodes {
				if n.Node == "new" && n.Source != tc.want {
					t.Errorf("status says source %q, want %q", n.Source, tc.want)
				}
			}
		})
	}
}
