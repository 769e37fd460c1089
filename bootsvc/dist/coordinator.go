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
	"slices"
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
	swept     time.Time // the last sweep
}

type transfer struct {
	key       string
	pieces    int
	pieceSize int64
	stripes   int
	started   time.Time
	nodes     map[string]*member
	inner     []int       // per stripe, the nodes that are inner nodes of its tree
	lastInner []time.Time // per stripe, when its latest inner node joined
	badPieces int
}

type member struct {
	name            string
	topo            Topology
	url             string
	inner           int      // the stripe whose tree this node is an inner node of
	source          []string // per stripe; "" = none yet (told to retry)
	stripeHeld      []int    // per stripe, pieces held from the stripe's start
	waitSince       []time.Time
	held            int
	from            map[string]int
	joined, updated time.Time
	doneAt          time.Time
	done, bad, left bool
	avoid           map[string]bool // sources this node reported failed or bad
}

// leafWait is how long a node waits for a peer in a stripe it is a leaf of
// before the boot server serves it that stripe (the storm's first nodes wait
// a moment for the stripe's first inner node to join).
const leafWait = 2 * time.Second

// settle is how long no inner node of a stripe must have joined before its
// leaves are placed.
const settle = 200 * time.Millisecond

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

// Join registers (or re-registers) a node and returns its source for the
// stripe it asks about.
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
	stripes := max(req.Stripes, 1)
	if stripes > req.Pieces || req.Stripe < 0 || req.Stripe >= stripes || req.StripeHeld < 0 || req.StripeHeld > req.Pieces {
		return Source{}, fmt.Errorf("join: node %s: stripe %d of %d, holding %d of it, in %d pieces", req.Node, req.Stripe, stripes, req.StripeHeld, req.Pieces)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	t := c.transfers[req.Transfer]
	if t == nil {
		t = &transfer{key: req.Transfer, pieces: req.Pieces, pieceSize: req.PieceSize, stripes: stripes, started: now,
			nodes: map[string]*member{}, inner: make([]int, stripes), lastInner: make([]time.Time, stripes)}
		c.transfers[req.Transfer] = t
	} else if t.pieces != req.Pieces || t.pieceSize != req.PieceSize || t.stripes != stripes {
		return Source{}, fmt.Errorf("join: node %s: transfer %s has %d pieces of %d bytes in %d stripes, node says %d of %d in %d",
			req.Node, req.Transfer, t.pieces, t.pieceSize, t.stripes, req.Pieces, req.PieceSize, stripes)
	}
	m := t.nodes[req.Node]
	if m == nil {
		// The node becomes an inner node of the stripe with the fewest, so
		// every stripe's tree has about N/stripes inner nodes.
		inner := 0
		for s := range t.inner {
			if t.inner[s] < t.inner[inner] {
				inner = s
			}
		}
		t.inner[inner]++
		t.lastInner[inner] = now
		m = &member{name: req.Node, joined: now, from: map[string]int{}, avoid: map[string]bool{}, inner: inner,
			source: make([]string, stripes), stripeHeld: make([]int, stripes), waitSince: make([]time.Time, stripes)}
		t.nodes[req.Node] = m
	}
	s := req.Stripe
	m.topo, m.url, m.held, m.updated, m.left = req.Topology, req.PeerURL, req.Held, now, false
	m.stripeHeld[s] = req.StripeHeld
	if stripes == 1 {
		m.stripeHeld[0] = req.Held
	}
	if req.Held == t.pieces && !m.done {
		m.done, m.doneAt = true, now
	}
	for _, f := range req.Failed {
		if f != ServerSource {
			m.avoid[f] = true
		}
		c.log.Info("source failed", "image", t.key, "node", m.name, "stripe", s, "source", f, "held", m.held)
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
	m.source[s] = ""
	if m.done {
		return Source{}, nil // a seeder: it fetches nothing
	}
	// While a storm's nodes still join, a leaf of stripe s waits: were it
	// to take a free slot of an inner node now, the inner nodes joining
	// after it would hang ever deeper (a leaf and an inner node arriving in
	// turn make a chain); once they are in, leaves fill the bottom level.
	if t.stripes > 1 && m.inner != s && now.Sub(t.lastInner[s]) < settle && now.Sub(m.joined) < leafWait && len(req.Failed) == 0 {
		return Source{Retry: settle / 2}, nil
	}
	inner, leaf := c.pick(t, m, s, now)
	if inner != nil {
		return c.assign(m, s, inner), nil
	}
	// The boot server roots every stripe's tree at the stripe's inner nodes;
	// a leaf gets a stripe from it only after waiting in vain, or when its
	// source failed and no peer is left.
	if m.waitSince[s].IsZero() {
		m.waitSince[s] = now
	}
	serverOK := t.stripes == 1 || m.inner == s || now.Sub(m.waitSince[s]) >= leafWait || len(req.Failed) > 0
	if leaf != nil && m.inner != s {
		return c.assign(m, s, leaf), nil
	}
	if !serverOK {
		return Source{Retry: 250 * time.Millisecond}, nil
	}
	if c.cfg.ServerFanout > 0 && c.children(t, ServerSource, now) >= c.cfg.ServerFanout {
		return Source{Retry: 2 * time.Second}, nil
	}
	m.source[s], m.waitSince[s] = ServerSource, time.Time{}
	return Source{Peer: ServerSource}, nil
}

func (c *Coordinator) assign(m *member, s int, p *member) Source {
	m.source[s], m.waitSince[s] = p.name, time.Time{}
	return Source{Peer: p.name, URL: p.url}
}

// pick returns the best peers for m's stripe s, or nil: an inner one (an
// inner node of stripe s's tree, or a finished node) and, failing that, a
// leaf of that tree with free fan-out. A candidate is live, receiving
// stripe s or done, not m's descendant in that stripe (that would be a
// cycle: it waits for pieces m lacks), not avoided, and below its fan-out
// (children over all stripes). Preferred: same rack, same switch, then a
// shallower one (a short tree delays the last node least), then a peer
// already ahead of m (it serves at once), then earlier joiners (a
// deterministic order).
func (c *Coordinator) pick(t *transfer, m *member, s int, now time.Time) (inner, leaf *member) {
	// One pass for child counts and the source relation, so a join costs
	// O(nodes) rather than O(nodes²) in a storm of thousands.
	kids := make(map[string]int, len(t.nodes))
	below := make(map[string][]string, len(t.nodes))
	for _, n := range t.nodes {
		for k, src := range n.source {
			if src == "" {
				continue
			}
			if k == s {
				below[src] = append(below[src], n.name)
			}
			if !n.done && c.alive(n, now) {
				kids[src]++
			}
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
	depths := make(map[string]int, len(t.nodes))
	ahead := func(p *member) int {
		if p.done || p.stripeHeld[s] > m.stripeHeld[s] {
			return 1
		}
		return 0
	}
	better := func(a, b *member) bool {
		return cmp.Or(
			cmp.Compare(near(m.topo, b.topo), near(m.topo, a.topo)),
			cmp.Compare(depth(t, a, s, depths), depth(t, b, s, depths)),
			cmp.Compare(ahead(b), ahead(a)),
			a.joined.Compare(b.joined),
			cmp.Compare(a.name, b.name)) < 0
	}
	for _, p := range t.nodes {
		if p == m || p.url == "" || p.bad || m.avoid[p.name] || !c.alive(p, now) {
			continue
		}
		if !p.done && p.source[s] == "" {
			continue // waiting itself
		}
		if kids[p.name] >= c.cfg.Fanout || subtree[p.name] {
			continue
		}
		if p.done || p.inner == s || t.stripes == 1 {
			if inner == nil || better(p, inner) {
				inner = p
			}
		} else if leaf == nil || better(p, leaf) {
			leaf = p
		}
	}
	return inner, leaf
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

// depth is p's distance from the boot server in stripe s's tree (a
// finished node counts as 0: it holds everything), memoised in memo.
func depth(t *transfer, p *member, s int, memo map[string]int) int {
	var path []*member
	d := 0
	for p != nil && !p.done && len(path) <= len(t.nodes) {
		if v, ok := memo[p.name]; ok {
			d = v
			break
		}
		path = append(path, p)
		p = t.nodes[p.source[s]]
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

// children counts the stripes live, unfinished nodes fetch from name.
func (c *Coordinator) children(t *transfer, name string, now time.Time) int {
	n := 0
	for _, m := range t.nodes {
		if m.done || !c.alive(m, now) {
			continue
		}
		for _, src := range m.source {
			if src == name {
				n++
			}
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
	// At most once a minute: a sweep visits every node, and a storm of
	// thousands joins (and re-asks) many times a second.
	if now.Sub(c.swept) < time.Minute {
		return
	}
	c.swept = now
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
	if p.StripeHeld != nil && len(p.StripeHeld) != t.stripes {
		return ProgressReply{}, fmt.Errorf("progress of node %s: %d stripes, transfer has %d", p.Node, len(p.StripeHeld), t.stripes)
	}
	m.held, m.updated, m.left = p.Held, now, false
	if t.stripes == 1 {
		m.stripeHeld[0] = p.Held
	}
	for s, k := range p.StripeHeld {
		m.stripeHeld[s] = min(max(k, 0), t.pieces)
	}
	if len(p.From) > 0 { // a seeder received nothing this time: keep what it got before
		m.from = maps.Clone(p.From)
	}
	if p.Done && p.Held == t.pieces && !m.done {
		m.done, m.doneAt = true, now
		c.log.Info("node holds a verified copy", "image", t.key, "node", m.name, "seconds", now.Sub(m.joined).Seconds())
	}
	return ProgressReply{Serve: c.children(t, m.name, now) > 0 || c.waiting(t, now)}, nil
}

// waiting says whether a live node of t waits for a source in some stripe
// (a finished node stays: it may be the one the waiter gets).
func (c *Coordinator) waiting(t *transfer, now time.Time) bool {
	for _, m := range t.nodes {
		if !m.done && c.alive(m, now) && slices.Contains(m.source, "") {
			return true
		}
	}
	return false
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
