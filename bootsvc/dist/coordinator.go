// Package dist is the boot service's coordinator for tree distribution of
// root images: per root image (a transfer), it tells each joining node where
// to fetch pieces from — the boot server, or a node already receiving —
// within a fan-out limit per node, preferring sources in the node's rack or
// switch, and repairs the tree when a source dies, stalls or sends a piece
// that fails verification. Nodes verify every piece against the manifest
// themselves (cmd/imgctl-agent); the coordinator only schedules and counts.
// The wire form is docs/PROTOCOL.md ("Tree distribution").
package dist

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/logging"
)

// ErrUnknown is a report for a node or transfer that never joined.
var ErrUnknown = errors.New("not joined")

// Coordinator schedules every transfer. It is safe for concurrent use.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	transfers map[string]*transfer
}

type transfer struct {
	key       string
	pieces    int
	pieceSize int64
	started   time.Time
	nodes     map[string]*member
	badPieces int
}

type member struct {
	name            string
	topo            Topology
	url             string
	source          string // "" = none yet (told to retry)
	held            int
	from            map[string]int
	joined, updated time.Time
	doneAt          time.Time
	done, bad, left bool
	avoid           map[string]bool // sources this node reported failed or bad
}

// New returns a coordinator; now nil = time.Now (tests pass a clock).
func New(cfg Config, log *slog.Logger, now func() time.Time) *Coordinator {
	if now == nil {
		now = time.Now
	}
	return &Coordinator{cfg: cfg.WithDefaults(), log: logging.OrDiscard(log).With("server", "dist"), now: now,
		transfers: map[string]*transfer{}}
}

// Config is the effective configuration.
func (c *Coordinator) Config() Config { return c.cfg }

// Join registers (or re-registers) a node and returns its source.
func (c *Coordinator) Join(req JoinRequest) (Source, error) {
	if req.Transfer == "" || req.Node == "" || req.Pieces <= 0 || req.PieceSize <= 0 {
		return Source{}, errors.New("join: transfer, node, pieces and piece_size are required")
	}
	if req.Node[0] == '@' {
		return Source{}, fmt.Errorf("join: node name %q: may not start with @", req.Node)
	}
	if req.Held < 0 || req.Held > req.Pieces {
		return Source{}, fmt.Errorf("join: node %s: held %d of %d pieces", req.Node, req.Held, req.Pieces)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	t := c.transfers[req.Transfer]
	if t == nil {
		t = &transfer{key: req.Transfer, pieces: req.Pieces, pieceSize: req.PieceSize, started: now, nodes: map[string]*member{}}
		c.transfers[req.Transfer] = t
	} else if t.pieces != req.Pieces || t.pieceSize != req.PieceSize {
		return Source{}, fmt.Errorf("join: node %s: transfer %s has %d pieces of %d bytes, node says %d of %d",
			req.Node, req.Transfer, t.pieces, t.pieceSize, req.Pieces, req.PieceSize)
	}
	m := t.nodes[req.Node]
	if m == nil {
		m = &member{name: req.Node, joined: now, from: map[string]int{}, avoid: map[string]bool{}}
		t.nodes[req.Node] = m
	}
	m.topo, m.url, m.held, m.updated, m.left = req.Topology, req.PeerURL, req.Held, now, false
	if req.Held == t.pieces && !m.done {
		m.done, m.doneAt = true, now
	}
	for _, f := range req.Failed {
		if f != ServerSource {
			m.avoid[f] = true
		}
		c.log.Info("source failed", "image", t.key, "node", m.name, "source", f, "held", m.held)
	}
	for _, b := range req.Bad {
		t.badPieces++
		m.avoid[b.Peer] = true
		if p := t.nodes[b.Peer]; p != nil && !p.bad {
			p.bad = true
			c.log.Warn("peer sent a piece that failed verification; avoided from now on", "image", t.key,
				"node", m.name, "peer", b.Peer, "piece", b.Piece)
		}
	}
	m.source = ""
	if m.done {
		return Source{}, nil // a seeder: it fetches nothing
	}
	if p := c.pick(t, m, now); p != nil {
		m.source = p.name
		return Source{Peer: p.name, URL: p.url}, nil
	}
	if c.cfg.ServerFanout > 0 && c.children(t, ServerSource, now) >= c.cfg.ServerFanout {
		return Source{Retry: 2 * time.Second}, nil
	}
	m.source = ServerSource
	return Source{Peer: ServerSource}, nil
}

// pick returns the best peer for m, or nil: a live peer that is receiving
// or done, not m's descendant (that would be a cycle: it waits for pieces m
// lacks), not avoided, with free fan-out. Preferred: same rack, same switch,
// then a peer already ahead of m (it serves at once), then a shallower one
// (a short tree delays the last node least), then earlier joiners (a
// deterministic order).
func (c *Coordinator) pick(t *transfer, m *member, now time.Time) *member {
	// One pass for child counts and the source relation, so a join costs
	// O(nodes) rather than O(nodes²) in a storm of thousands.
	kids := map[string]int{}
	below := map[string][]string{}
	for _, n := range t.nodes {
		if n.source == "" {
			continue
		}
		below[n.source] = append(below[n.source], n.name)
		if !n.done && c.alive(n, now) {
			kids[n.source]++
		}
	}
	subtree := map[string]bool{}
	for queue := []string{m.name}; len(queue) > 0; queue = queue[1:] {
		for _, k := range below[queue[0]] {
			if !subtree[k] {
				subtree[k] = true
				queue = append(queue, k)
			}
		}
	}
	depths := map[string]int{}
	ahead := func(p *member) int {
		if p.done || p.held > m.held {
			return 1
		}
		return 0
	}
	better := func(a, b *member) bool {
		return cmp.Or(
			cmp.Compare(near(m.topo, b.topo), near(m.topo, a.topo)),
			cmp.Compare(ahead(b), ahead(a)),
			cmp.Compare(depth(t, a, depths), depth(t, b, depths)),
			a.joined.Compare(b.joined),
			cmp.Compare(a.name, b.name)) < 0
	}
	var best *member
	for _, p := range t.nodes {
		if p == m || p.url == "" || p.bad || m.avoid[p.name] || !c.alive(p, now) {
			continue
		}
		if !p.done && p.source == "" {
			continue // waiting itself
		}
		if kids[p.name] >= c.cfg.Fanout || subtree[p.name] {
			continue
		}
		if best == nil || better(p, best) {
			best = p
		}
	}
	return best
}

// near scores how close two nodes sit: 2 same rack, 1 same switch.
func near(a, b Topology) int {
	switch {
	case a.Rack != "" && a.Rack == b.Rack:
		return 2
	case a.Switch != "" && a.Switch == b.Switch:
		return 1
	}
	return 0
}

// depth is p's distance from the boot server (a finished node counts as 0:
// it holds everything), memoised in memo.
func depth(t *transfer, p *member, memo map[string]int) int {
	var path []*member
	d := 0
	for p != nil && !p.done && len(path) <= len(t.nodes) {
		if v, ok := memo[p.name]; ok {
			d = v
			break
		}
		path = append(path, p)
		p = t.nodes[p.source]
	}
	for i := len(path) - 1; i >= 0; i-- {
		d++
		memo[path[i].name] = d
	}
	return d
}

// alive: the node reported within two stall periods (agents send a
// heartbeat every half period) and has not left.
func (c *Coordinator) alive(m *member, now time.Time) bool {
	return !m.left && now.Sub(m.updated) <= 2*c.cfg.Stall
}

// children counts the live, unfinished nodes fetching from name.
func (c *Coordinator) children(t *transfer, name string, now time.Time) int {
	n := 0
	for _, m := range t.nodes {
		if m.source == name && !m.done && c.alive(m, now) {
			n++
		}
	}
	return n
}

// forgetAfter is how long a transfer whose nodes all went silent is kept
// (for `dist status`) before it is dropped.
const forgetAfter = time.Hour

// sweep drops transfers no node has reported to for forgetAfter, so a
// long-running service does not keep every image it ever distributed.
func (c *Coordinator) sweep(now time.Time) {
	for key, t := range c.transfers {
		last := t.started
		for _, m := range t.nodes {
			if m.updated.After(last) {
				last = m.updated
			}
		}
		if now.Sub(last) > forgetAfter {
			delete(c.transfers, key)
		}
	}
}

// Report records a node's progress.
func (c *Coordinator) Report(p Progress) (ProgressReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.transfers[p.Transfer]
	if t == nil || t.nodes[p.Node] == nil {
		return ProgressReply{}, fmt.Errorf("progress of node %s for %s: %w", p.Node, p.Transfer, ErrUnknown)
	}
	if p.Held < 0 || p.Held > t.pieces {
		return ProgressReply{}, fmt.Errorf("progress of node %s: held %d of %d pieces", p.Node, p.Held, t.pieces)
	}
	for src, k := range p.From {
		if k < 0 || k > t.pieces {
			return ProgressReply{}, fmt.Errorf("progress of node %s: %d pieces from %s of %d", p.Node, k, src, t.pieces)
		}
	}
	now := c.now()
	m := t.nodes[p.Node]
	m.held, m.updated, m.left = p.Held, now, false
	if len(p.From) > 0 { // a seeder received nothing this time: keep what it got before
		m.from = maps.Clone(p.From)
	}
	if p.Done && p.Held == t.pieces && !m.done {
		m.done, m.doneAt = true, now
		c.log.Info("node holds a verified copy", "image", t.key, "node", m.name, "seconds", now.Sub(m.joined).Seconds())
	}
	return ProgressReply{Serve: c.children(t, m.name, now) > 0}, nil
}

// Leave says a node stopped serving (its children re-ask).
func (c *Coordinator) Leave(transfer, node string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.transfers[transfer]
	if t == nil || t.nodes[node] == nil {
		return fmt.Errorf("leave of node %s for %s: %w", node, transfer, ErrUnknown)
	}
	t.nodes[node].left = true
	return nil
}
