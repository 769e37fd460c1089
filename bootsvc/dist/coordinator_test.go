package dist

import (
	"fmt"
	"testing"
	"time"
)

// step is one event in a scheduling scenario: a join (want is the source it
// must get; "retry" for Retry), a progress report, a leave, or the clock
// moving on.
type step struct {
	join, report, leave string
	held                int
	done                bool
	topo                Topology
	failed              []string
	bad                 []BadPiece
	advance             time.Duration
	want                string
}

func TestScheduling(t *testing.T) {
	const pieces = 10
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{name: "first node fetches from the server, the next from the first", steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
		}},
		{name: "fan-out 1 builds a chain", cfg: Config{Fanout: 1}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "c", want: "b"},
			{join: "d", want: "c"},
		}},
		{name: "fan-out 2 fills the first node first", cfg: Config{Fanout: 2}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "c", want: "a"},
			{join: "d", want: "b"},
		}},
		{name: "same rack wins over an earlier peer", cfg: Config{Fanout: 2}, steps: []step{
			{join: "a", topo: Topology{Rack: "r1"}, want: ServerSource},
			{join: "b", topo: Topology{Rack: "r2"}, failed: []string{"a"}, want: ServerSource},
			{join: "c", topo: Topology{Rack: "r2"}, want: "b"},
			{join: "d", topo: Topology{Rack: "r1"}, want: "a"},
		}},
		{name: "same switch wins when no rack matches", cfg: Config{Fanout: 2}, steps: []step{
			{join: "a", topo: Topology{Rack: "r1", Switch: "s1"}, want: ServerSource},
			{join: "b", topo: Topology{Rack: "r2", Switch: "s2"}, failed: []string{"a"}, want: ServerSource},
			{join: "c", topo: Topology{Rack: "r3", Switch: "s2"}, want: "b"},
		}},
		{name: "a peer ahead wins over one behind", cfg: Config{Fanout: 2}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", failed: []string{"a"}, want: ServerSource},
			{report: "a", held: 1},
			{report: "b", held: 5},
			{join: "c", held: 2, want: "b"},
		}},
		{name: "never a descendant: a re-asking parent goes back to the server", steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "a", failed: []string{ServerSource}, want: ServerSource},
		}},
		{name: "a dead parent's child moves up to the grandparent", cfg: Config{Fanout: 1}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "c", want: "b"},
			{advance: 20 * time.Second},
			{report: "a", held: 6},
			{report: "c", held: 3},
			{advance: 15 * time.Second}, // b silent for 35 s > 2×stall
			{join: "c", held: 3, failed: []string{"b"}, want: "a"},
		}},
		{name: "a failed source is avoided by the node that reported it", cfg: Config{Fanout: 2}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "b", held: 2, failed: []string{"a"}, want: ServerSource},
			{join: "c", failed: []string{"b"}, want: "a"},
		}},
		{name: "a peer that sent a bad piece is avoided by everyone", cfg: Config{Fanout: 3}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{join: "b", held: 3, bad: []BadPiece{{Peer: "a", Piece: 3}}, want: ServerSource},
			{join: "c", want: "b"},
		}},
		{name: "finished children free their parent's fan-out", steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", want: "a"},
			{report: "a", held: pieces, done: true},
			{report: "b", held: pieces, done: true},
			{join: "c", want: "a"},
		}},
		{name: "a node that left is no source", steps: []step{
			{join: "a", want: ServerSource},
			{leave: "a"},
			{join: "b", want: ServerSource},
		}},
		{name: "a full server says retry", cfg: Config{ServerFanout: 1}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", failed: []string{"a"}, want: "retry"},
			{report: "a", held: pieces, done: true},
			{join: "b", failed: []string{"a"}, want: ServerSource},
		}},
		{name: "a waiting node is no source", cfg: Config{ServerFanout: 1}, steps: []step{
			{join: "a", want: ServerSource},
			{join: "b", failed: []string{"a"}, want: "retry"},
			{join: "c", failed: []string{"a"}, want: "retry"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			c := New(tc.cfg, nil, func() time.Time { return now })
			for i, s := range tc.steps {
				switch {
				case s.advance > 0:
					now = now.Add(s.advance)
				case s.report != "":
					if _, err := c.Report(Progress{Transfer: "img", Node: s.report, Held: s.held, Done: s.done}); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case s.leave != "":
					if err := c.Leave("img", s.leave); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				default:
					src, err := c.Join(JoinRequest{Transfer: "img", Pieces: pieces, PieceSize: 4 << 20, Node: s.join, Held: s.held,
						Failed: s.failed, Bad: s.bad, Topology: s.topo, PeerURL: "http://" + s.join + "/root"})
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					got := src.Peer
					if src.Retry > 0 {
						got = "retry"
					}
					if got != s.want {
						t.Fatalf("step %d: %s got source %q, want %q", i, s.join, got, s.want)
					}
				}
			}
		})
	}
}

func TestJoinRefuses(t *testing.T) {
	c := New(Config{}, nil, nil)
	if _, err := c.Join(JoinRequest{Transfer: "img", Pieces: 4, PieceSize: 1, Node: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  JoinRequest
	}{
		{"no transfer", JoinRequest{Pieces: 4, PieceSize: 1, Node: "b"}},
		{"no pieces", JoinRequest{Transfer: "img", PieceSize: 1, Node: "b"}},
		{"reserved name", JoinRequest{Transfer: "img", Pieces: 4, PieceSize: 1, Node: ServerSource}},
		{"held beyond the image", JoinRequest{Transfer: "img", Pieces: 4, PieceSize: 1, Node: "b", Held: 5}},
		{"other piece count", JoinRequest{Transfer: "img", Pieces: 5, PieceSize: 1, Node: "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Join(tc.req); err == nil {
				t.Errorf("join %+v: accepted", tc.req)
			}
		})
	}
	if _, err := c.Report(Progress{Transfer: "img", Node: "zz"}); err == nil {
		t.Error("progress of a node that never joined: accepted")
	}
}

func TestStatusCountsPiecesPerSource(t *testing.T) {
	c := New(Config{}, nil, nil)
	for _, n := range []string{"a", "b"} {
		if _, err := c.Join(JoinRequest{Transfer: "img", Pieces: 10, PieceSize: 4 << 20, Node: n, PeerURL: "http://" + n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Report(Progress{Transfer: "img", Node: "b", Held: 10, Done: true, From: map[string]int{"a": 9, ServerSource: 1}}); err != nil {
		t.Fatal(err)
	}
	// b reboots and seeds: it joins holding everything and reports no
	// pieces received; what it got before stays counted.
	if src, err := c.Join(JoinRequest{Transfer: "img", Pieces: 10, PieceSize: 4 << 20, Node: "b", Held: 10, PeerURL: "http://b"}); err != nil || src != (Source{}) {
		t.Fatalf("seeder join = %+v, %v; want no source", src, err)
	}
	if _, err := c.Report(Progress{Transfer: "img", Node: "b", Held: 10, Done: true, From: map[string]int{}}); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if len(st) != 1 || len(st[0].Nodes) != 2 {
		t.Fatalf("status = %+v", st)
	}
	b := st[0].Nodes[1]
	if b.Node != "b" || b.From["a"] != 9 || !b.Done || b.Source != "" {
		t.Errorf("b = %+v, want 9 pieces from a, done, no source", b)
	}
}

// TestSweep: a transfer nobody reported to for an hour leaves the status.
func TestSweep(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New(Config{}, nil, func() time.Time { return now })
	join := func(transfer string) {
		if _, err := c.Join(JoinRequest{Transfer: transfer, Pieces: 1, PieceSize: 1, Node: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	join("old")
	now = now.Add(2 * time.Hour)
	join("new")
	if st := c.Status(); len(st) != 1 || st[0].Transfer != "new" {
		t.Errorf("status = %+v, want only the new transfer", st)
	}
}

// TestStormOfThousands: 1,000 simultaneous joins with fan-out 1 build one
// chain, each node behind the one before it (and a join stays O(nodes)).
func TestStormOfThousands(t *testing.T) {
	c := New(Config{Fanout: 1}, nil, nil)
	prev := ServerSource
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("n%04d", i)
		src, err := c.Join(JoinRequest{Transfer: "img", Pieces: 64, PieceSize: 4 << 20, Node: name, PeerURL: "http://" + name})
		if err != nil {
			t.Fatal(err)
		}
		if src.Peer != prev {
			t.Fatalf("%s got %s, want %s", name, src.Peer, prev)
		}
		prev = name
	}
}
