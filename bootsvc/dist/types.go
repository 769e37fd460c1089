package dist

import "time"

// ServerSource names the boot server as a source; node names never start
// with '@' (Join refuses them).
const ServerSource = "@server"

// Topology is where a node sits, from the inventory; empty labels match
// nothing.
type Topology struct {
	Rack   string `json:"rack,omitempty"`
	Switch string `json:"switch,omitempty"`
}

// BadPiece is a piece that failed verification, and the peer that sent it.
type BadPiece struct {
	Peer  string `json:"peer"`
	Piece int    `json:"piece"`
}

// JoinRequest is a node asking for a source: when it starts, and again
// whenever its source failed (Failed) or sent a bad piece (Bad).
type JoinRequest struct {
	Transfer  string `json:"transfer"`   // the image digest
	Pieces    int    `json:"pieces"`     // pieces in the root image (from the manifest)
	PieceSize int64  `json:"piece_size"` // bytes per piece
	Node      string `json:"node"`
	Held      int    `json:"held"` // pieces verified in all (pieces [0, Held) with one stripe)
	// Striped transfers: the image is cut into Stripes contiguous ranges
	// and a node fetches each from its own source; this request is for
	// Stripe, of which the node holds StripeHeld pieces from its start
	// (the next fetch starts there). Stripes 0 or 1: one stripe, Held.
	Stripes    int        `json:"stripes,omitempty"`
	Stripe     int        `json:"stripe,omitempty"`
	StripeHeld int        `json:"stripe_held,omitempty"`
	Failed     []string   `json:"failed,omitempty"` // sources that died or stalled
	Bad        []BadPiece `json:"bad,omitempty"`
	// Set by the HTTP layer from the inventory and the request, never by
	// the node: where the node sits and where it serves pieces.
	Topology Topology `json:"-"`
	PeerURL  string   `json:"-"`
}

// Source is the coordinator's answer: fetch from Peer at URL, or from the
// boot server (Peer == ServerSource; the node uses its own root image URL),
// or, when Retry > 0, ask again after Retry.
type Source struct {
	Peer  string        `json:"peer,omitempty"`
	URL   string        `json:"url,omitempty"`
	Retry time.Duration `json:"retry,omitempty"`
}

// Progress is a node's report of what it holds, sent after pieces arrive
// and as a heartbeat while it serves.
type Progress struct {
	Transfer string `json:"transfer"`
	Node     string `json:"node"`
	Held     int    `json:"held"`
	// StripeHeld is, per stripe, the pieces held from the stripe's start
	// (striped transfers; nil with one stripe).
	StripeHeld []int          `json:"stripe_held,omitempty"`
	From       map[string]int `json:"from,omitempty"` // pieces received per source, totals
	Done       bool           `json:"done,omitempty"` // holds the whole image, verified
}

// ProgressReply tells a node whether children still fetch from it (a node
// that finished keeps serving while Serve is true).
type ProgressReply struct {
	Serve bool `json:"serve"`
}
