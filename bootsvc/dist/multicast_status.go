package dist

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// MulticastStatus is one multicast transfer as `imgctl dist status` shows
// it. The JSON field names are stable.
type MulticastStatus struct {
	Transfer  string                `json:"transfer"`
	Group     string                `json:"group"` // address:port
	RateBPS   int64                 `json:"rate_bits_per_second"`
	Pieces    int                   `json:"pieces"`
	PieceSize int64                 `json:"piece_size"`
	Started   time.Time             `json:"started"`
	Sending   bool                  `json:"sending"`
	BytesSent int64                 `json:"bytes_sent"` // UDP payload bytes, all passes
	Datagrams int64                 `json:"datagrams"`
	Passes    int                   `json:"passes"`     // full passes over the image
	BadPieces int                   `json:"bad_pieces"` // pieces the server would not send (failed verification)
	Error     string                `json:"error,omitempty"`
	Nodes     []MulticastNodeStatus `json:"nodes"`
}

// MulticastNodeStatus is one receiver.
type MulticastNodeStatus struct {
	Node         string  `json:"node"`
	Held         int     `json:"held"`
	Multicast    int     `json:"multicast"` // pieces completed from datagrams alone
	Repaired     int     `json:"repaired"`  // pieces completed or fetched over HTTP
	RepairBytes  int64   `json:"repair_bytes"`
	WantCarousel bool    `json:"want_carousel"`
	Done         bool    `json:"done"`
	Alive        bool    `json:"alive"`
	Seconds      float64 `json:"seconds"` // since it joined, or how long it took
}

// Status returns every multicast transfer, sorted by digest, nodes by name.
func (m *Multicast) Status() []MulticastStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := []MulticastStatus{}
	for _, key := range slices.Sorted(maps.Keys(m.transfers)) {
		t := m.transfers[key]
		s := MulticastStatus{Transfer: key, Group: t.group.String(), RateBPS: t.rate, Pieces: t.pieces, PieceSize: t.pieceSize,
			Started: t.started, Sending: t.sending, BytesSent: t.bytesSent, Datagrams: t.datagrams, Passes: t.passes,
			BadPieces: t.badPieces, Error: t.err}
		for _, n := range t.nodes {
			end := now
			if n.done {
				end = n.doneAt
			}
			s.Nodes = append(s.Nodes, MulticastNodeStatus{Node: n.name, Held: n.held, Multicast: n.multicast, Repaired: n.repaired,
				RepairBytes: n.repairBytes, WantCarousel: n.wantCarousel, Done: n.done, Alive: n.done || now.Sub(n.updated) <= 3*heartbeat,
				Seconds: end.Sub(n.joined).Seconds()})
		}
		slices.SortFunc(s.Nodes, func(a, b MulticastNodeStatus) int { return cmp.Compare(a.Node, b.Node) })
		out = append(out, s)
	}
	return out
}

// MulticastSource names the multicast carousel as a source in a
// TransferStatus (pieces repaired over HTTP count under ServerSource).
const MulticastSource = "@multicast"

// AsTransfer is s in the tree transfers' form, for one status listing of
// every distribution: each node's source is MulticastSource, its From the
// pieces completed by multicast and by repair.
func (s MulticastStatus) AsTransfer() TransferStatus {
	t := TransferStatus{Transfer: s.Transfer, Pieces: s.Pieces, PieceSize: s.PieceSize, Started: s.Started, BadPieces: s.BadPieces}
	for _, n := range s.Nodes {
		ns := NodeStatus{Node: n.Node, Source: MulticastSource, Held: n.Held, From: map[string]int{}, Done: n.Done, Alive: n.Alive, Seconds: n.Seconds}
		if n.Multicast > 0 {
			ns.From[MulticastSource] = n.Multicast
		}
		if n.Repaired > 0 {
			ns.From[ServerSource] = n.Repaired
		}
		if n.Seconds > 0 {
			ns.Rate = float64(int64(n.Held)*s.PieceSize) / n.Seconds
		}
		t.Nodes = append(t.Nodes, ns)
	}
	return t
}
