package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/imgctl/imgctl/internal/atomicfile"
)

// StateFile is where serve keeps the coordinator's state, under its state
// directory: a restarted (or crashed) boot service resumes every transfer's
// tree instead of treating the nodes it finds as strangers.
const StateFile = "dist/transfers.json"

// persistEvery bounds what a crash loses: at most this much of the tree's
// history. Agents cover the rest by re-joining when the coordinator does not
// know them (docs/PROTOCOL.md, "resume").
const persistEvery = time.Second

// savedVersion is the state file's format; another is refused, not guessed.
const savedVersion = 2

type savedState struct {
	Version   int             `json:"version"`
	Transfers []savedTransfer `json:"transfers"`
}

type savedTransfer struct {
	Key       string        `json:"transfer"`
	Pieces    int           `json:"pieces"`
	PieceSize int64         `json:"piece_size"`
	Stripes   int           `json:"stripes"`
	Started   time.Time     `json:"started"`
	BadPieces int           `json:"bad_pieces,omitempty"`
	Nodes     []savedMember `json:"nodes"`
}

// savedMember leaves out when the node last reported: that changes with
// every heartbeat, and a restored node gets a fresh lease anyway.
type savedMember struct {
	Name       string         `json:"node"`
	Topo       Topology       `json:"topology,omitzero"`
	URL        string         `json:"url,omitempty"`
	Inner      int            `json:"inner"`   // the stripe this node is an inner node of
	Sources    []string       `json:"sources"` // per stripe
	StripeHeld []int          `json:"stripe_held"`
	Held       int            `json:"held"`
	From       map[string]int `json:"from,omitempty"`
	Joined     time.Time      `json:"joined"`
	DoneAt     time.Time      `json:"done_at,omitzero"`
	Done       bool           `json:"done,omitempty"`
	Bad        bool           `json:"bad,omitempty"`
	Left       bool           `json:"left,omitempty"`
	Avoid      []string       `json:"avoid,omitempty"`
}

// snapshot is every transfer in the saved form, in a stable order (so an
// unchanged tree marshals to the same bytes and is not rewritten).
func (c *Coordinator) snapshot() savedState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := savedState{Version: savedVersion}
	for _, key := range slices.Sorted(maps.Keys(c.transfers)) {
		t := c.transfers[key]
		st2 := savedTransfer{Key: key, Pieces: t.pieces, PieceSize: t.pieceSize, Stripes: t.stripes, Started: t.started, BadPieces: t.badPieces}
		for _, name := range slices.Sorted(maps.Keys(t.nodes)) {
			m := t.nodes[name]
			st2.Nodes = append(st2.Nodes, savedMember{Name: m.name, Topo: m.topo, URL: m.url, Inner: m.inner,
				Sources: slices.Clone(m.source), StripeHeld: slices.Clone(m.stripeHeld), Held: m.held,
				From: maps.Clone(m.from), Joined: m.joined, DoneAt: m.doneAt, Done: m.done, Bad: m.bad, Left: m.left,
				Avoid: slices.Sorted(maps.Keys(m.avoid))})
		}
		st.Transfers = append(st.Transfers, st2)
	}
	return st
}

// Restore loads the state file at path, written by Persist; a missing file
// is an empty coordinator. Every restored node counts as alive for two stall
// periods from now: it has that long to report again before it stops being
// handed out as a source.
func (c *Coordinator) Restore(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("dist state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("dist state %s: %w", path, err)
	}
	if st.Version != savedVersion {
		return 0, fmt.Errorf("dist state %s: version %d, want %d", path, st.Version, savedVersion)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	nodes := 0
	loaded := map[string]*transfer{} // all or nothing
	for _, s := range st.Transfers {
		if s.Key == "" || s.Pieces <= 0 || s.PieceSize <= 0 || s.Stripes < 1 || s.Stripes > s.Pieces {
			return 0, fmt.Errorf("dist state %s: transfer %q: %d pieces in %d stripes", path, s.Key, s.Pieces, s.Stripes)
		}
		t := &transfer{key: s.Key, pieces: s.Pieces, pieceSize: s.PieceSize, stripes: s.Stripes, started: s.Started, badPieces: s.BadPieces,
			nodes: map[string]*member{}, inner: make([]int, s.Stripes), lastInner: make([]time.Time, s.Stripes)}
		for _, sm := range s.Nodes {
			if sm.Name == "" || sm.Held < 0 || sm.Held > s.Pieces {
				return 0, fmt.Errorf("dist state %s: transfer %s: node %q holds %d of %d pieces", path, s.Key, sm.Name, sm.Held, s.Pieces)
			}
			if sm.Inner < 0 || sm.Inner >= s.Stripes || len(sm.Sources) != s.Stripes || len(sm.StripeHeld) != s.Stripes {
				return 0, fmt.Errorf("dist state %s: transfer %s: node %q: inner stripe %d, %d sources and %d stripe counts for %d stripes",
					path, s.Key, sm.Name, sm.Inner, len(sm.Sources), len(sm.StripeHeld), s.Stripes)
			}
			t.inner[sm.Inner]++
			m := &member{name: sm.Name, topo: sm.Topo, url: sm.URL, inner: sm.Inner, source: sm.Sources, stripeHeld: sm.StripeHeld,
				waitSince: make([]time.Time, s.Stripes), held: sm.Held, from: sm.From,
				joined: sm.Joined, updated: now, doneAt: sm.DoneAt, done: sm.Done, bad: sm.Bad, left: sm.Left, avoid: map[string]bool{}}
			if m.from == nil {
				m.from = map[string]int{}
			}
			for _, a := range sm.Avoid {
				m.avoid[a] = true
			}
			t.nodes[m.name] = m
			nodes++
		}
		loaded[s.Key] = t
	}
	maps.Copy(c.transfers, loaded)
	c.log.Info("restored tree transfers", "path", path, "transfers", len(st.Transfers), "nodes", nodes)
	return len(st.Transfers), nil
}

// Persist writes the coordinator's state to path (temp + rename) whenever
// it changed, at most every persistEvery, and once more when ctx ends.
func (c *Coordinator) Persist(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("dist state: %w", err)
	}
	var last []byte
	write := func() error {
		b, err := json.Marshal(c.snapshot())
		if err != nil {
			return fmt.Errorf("dist state: %w", err)
		}
		if bytes.Equal(b, last) {
			return nil
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("dist state: %w", err)
		}
		last = b
		return nil
	}
	if b, err := os.ReadFile(path); err == nil {
		last = b // what Restore loaded: not rewritten until something changes
	}
	tick := time.NewTicker(persistEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return write()
		case <-tick.C:
		}
		if err := write(); err != nil {
			// A full disk must not stop the boot service: the tree still
			// works, only a restart would lose it.
			c.log.Warn("could not save the tree transfers", "err", err)
		}
	}
}
