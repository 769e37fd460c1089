package dist

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// TransferStatus is one transfer as `imgctl dist status` shows it. The JSON
// field names are stable.
type TransferStatus struct {
	Transfer  string       `json:"transfer"`
	Pieces    int          `json:"pieces"`
	PieceSize int64        `json:"piece_size"`
	Started   time.Time    `json:"started"`
	Stripes   int          `json:"stripes"`
	BadPieces int          `json:"bad_pieces"` // verification failures reported
	Nodes     []NodeStatus `json:"nodes"`
}

// NodeStatus is one node of a transfer.
type NodeStatus struct {
	Node   string `json:"node"`
	Source string `json:"source,omitempty"` // ServerSource, a peer, or "" (waiting); of stripe 0
	// Sources is the source of every stripe, in stripe order (striped
	// transfers only).
	Sources []string       `json:"sources,omitempty"`
	Held    int            `json:"held"`
	From    map[string]int `json:"from,omitempty"` // pieces received per source
	Done    bool           `json:"done"`
	Alive   bool           `json:"alive"`
	Bad     bool           `json:"bad,omitempty"` // sent a piece that failed verification
	// Rate is the node's mean receive rate in bytes per second since it
	// joined (until it finished).
	Rate    float64 `json:"rate_bytes_per_second"`
	Seconds float64 `json:"seconds"` // since it joined, or how long it took
}

// Status returns every transfer, sorted by name, nodes by name.
func (c *Coordinator) Status() []TransferStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []TransferStatus
	for _, key := range slices.Sorted(maps.Keys(c.transfers)) {
		t := c.transfers[key]
		ts := TransferStatus{Transfer: key, Pieces: t.pieces, PieceSize: t.pieceSize, Started: t.started, Stripes: t.stripes, BadPieces: t.badPieces}
		for _, m := range t.nodes {
			end := now
			if m.done && !m.doneAt.IsZero() {
				end = m.doneAt
			}
			ns := NodeStatus{Node: m.name, Source: m.source[0], Held: m.held, From: maps.Clone(m.from), Done: m.done,
				Alive: c.alive(m, now), Bad: m.bad, Seconds: end.Sub(m.joined).Seconds()}
			if t.stripes > 1 {
				ns.Sources = slices.Clone(m.source)
			}
			if received := sum(m.from); ns.Seconds > 0 {
				ns.Rate = float64(int64(received)*t.pieceSize) / ns.Seconds
			}
			ts.Nodes = append(ts.Nodes, ns)
		}
		slices.SortFunc(ts.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.Node, b.Node) })
		out = append(out, ts)
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
