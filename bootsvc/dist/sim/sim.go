// Package sim simulates a tree-distribution storm: N nodes joining the real
// coordinator (bootsvc/dist, its Join and Report, on a simulated clock) and
// moving the root image over a fluid link model, to predict R = T_last /
// (S/B) for storms too large for the namespace harness (1,000 and 10,000
// nodes).
//
// The model: every node and the boot server have an uplink and a downlink of
// Rate bytes/s. A flow is one stripe a node fetches from its source; its
// rate is min(Rate / flows out of the source, Rate / flows into the node),
// and it never overtakes what the source holds: the source passes a
// sub-piece on only once it has all of it (verify-before-forward) plus
// HopLatency (request, verification, the first byte crossing the hop).
// Capacity a flow cannot use because it caught up with its source is not
// given to the source's other flows (the harness's TCP would), so the model
// errs slow. Nodes join spread evenly over JoinSpread, each stripe asking
// the coordinator at its own retry times, as the agent does. Pieces are
// laid out as the agent lays them out: stripes of whole 4 MiB manifest
// pieces, passed on in SubPiece units.
package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
)

// ManifestPiece is the manifest's piece size stripes are aligned to.
const ManifestPiece = 4 << 20

// Params describe one storm.
type Params struct {
	Nodes      int
	Size       int64   // S, bytes
	Rate       float64 // B, bytes per second, each direction of every link
	SubPiece   int64   // forwarding unit, bytes
	Stripes    int
	Fanout     int
	HopLatency time.Duration
	JoinSpread time.Duration
	Step       time.Duration // 0: an eighth of a sub-piece at Rate/Stripes
}

func (p Params) String() string {
	return fmt.Sprintf("N=%d S=%d B=%.0fB/s sub=%d stripes=%d fanout=%d hop=%s join-spread=%s step=%s",
		p.Nodes, p.Size, p.Rate, p.SubPiece, p.Stripes, p.Fanout, p.HopLatency, p.JoinSpread, p.Step)
}

// Result is what a storm measured.
type Result struct {
	TLast, P50  time.Duration
	ServerBytes float64 // what the boot server sent
	Done        []time.Duration
}

// R is TLast over S/B.
func (r Result) R(p Params) float64 { return r.TLast.Seconds() / (float64(p.Size) / p.Rate) }

type stripe struct {
	a, b      int     // units [a, b)
	bytes     float64 // length
	src       int     // index of the source node; -1 none, -2 the server
	recv      float64 // bytes received from the stripe's start
	complete  []time.Duration
	nextAsk   time.Duration
	finished  bool
	fromPeers int
}

type node struct {
	name     string
	join     time.Duration
	stripes  []stripe
	done     bool
	doneAt   time.Duration
	up, down int // active flows out and in
}

const (
	noSource     = -1
	serverSource = -2
)

// Run simulates p to the last node's copy (or an error after an hour of
// simulated time).
func Run(p Params) (Result, error) {
	if p.Nodes <= 0 || p.Size <= 0 || p.Rate <= 0 || p.SubPiece <= 0 || p.Stripes <= 0 || p.Fanout <= 0 {
		return Result{}, errors.New("sim: nodes, size, rate, sub-piece, stripes and fanout must be positive")
	}
	units := int((p.Size + p.SubPiece - 1) / p.SubPiece)
	perPiece := max(int(ManifestPiece/p.SubPiece), 1)
	mpieces := int((p.Size + ManifestPiece - 1) / ManifestPiece)
	k := min(p.Stripes, mpieces)
	step := p.Step
	if step <= 0 {
		step = time.Duration(float64(p.SubPiece) / (p.Rate / float64(k)) / 8 * float64(time.Second))
	}
	var now time.Duration
	epoch := time.Unix(1_000_000, 0)
	c := dist.New(dist.Config{Fanout: p.Fanout, Stripes: k, SubPiece: p.SubPiece, Stall: time.Hour}, nil,
		func() time.Time { return epoch.Add(now) })
	nodes := make([]*node, p.Nodes)
	index := map[string]int{}
	for i := range nodes {
		n := &node{name: fmt.Sprintf("n%05d", i)}
		if p.Nodes > 1 {
			n.join = time.Duration(int64(p.JoinSpread) * int64(i) / int64(p.Nodes))
		}
		for s := range k {
			a, b := s*mpieces/k*perPiece, min((s+1)*mpieces/k*perPiece, units)
			end := min(int64(b)*p.SubPiece, p.Size)
			n.stripes = append(n.stripes, stripe{a: a, b: b, bytes: float64(end - int64(a)*p.SubPiece), src: noSource, nextAsk: n.join})
		}
		nodes[i], index[n.name] = n, i
	}
	const transfer = "sim"
	var res Result
	left := p.Nodes
	for left > 0 {
		if now > time.Hour {
			return res, fmt.Errorf("sim: %d nodes unfinished after an hour of simulated time", left)
		}
		// Joins and re-asks due now.
		for _, n := range nodes {
			if n.join > now || n.done {
				continue
			}
			for s := range n.stripes {
				st := &n.stripes[s]
				if st.finished || st.src != noSource || st.nextAsk > now {
					continue
				}
				held := 0
				for _, o := range n.stripes {
					held += len(o.complete)
				}
				src, err := c.Join(dist.JoinRequest{Transfer: transfer, Pieces: units, PieceSize: p.SubPiece, Node: n.name,
					Held: held, Stripes: k, Stripe: s, StripeHeld: len(st.complete), PeerURL: "http://" + n.name})
				if err != nil {
					return res, fmt.Errorf("sim: join %s: %w", n.name, err)
				}
				switch {
				case src.Retry > 0:
					st.nextAsk = now + src.Retry
				case src.Peer == dist.ServerSource:
					st.src = serverSource
				default:
					st.src = index[src.Peer]
				}
			}
		}
		// Flows and their rates.
		serverUp := 0
		for _, n := range nodes {
			n.up, n.down = 0, 0
		}
		for _, n := range nodes {
			for _, st := range n.stripes {
				if st.finished || st.src == noSource {
					continue
				}
				n.down++
				if st.src == serverSource {
					serverUp++
				} else {
					nodes[st.src].up++
				}
			}
		}
		dt := step.Seconds()
		now += step
		for _, n := range nodes {
			if n.done {
				continue
			}
			for s := range n.stripes {
				st := &n.stripes[s]
				if st.finished || st.src == noSource {
					continue
				}
				up := serverUp
				limit := st.bytes
				if st.src != serverSource {
					parent := nodes[st.src]
					up = parent.up
					if !parent.done {
						limit = min(limit, float64(available(parent.stripes[s], now-step, p.HopLatency))*float64(p.SubPiece))
					}
				}
				rate := min(p.Rate/float64(up), p.Rate/float64(n.down))
				got := min(st.recv+rate*dt, limit)
				if got <= st.recv {
					continue
				}
				if st.src == serverSource {
					res.ServerBytes += got - st.recv
				}
				st.recv = got
				for len(st.complete) < st.b-st.a {
					end := min(float64(len(st.complete)+1)*float64(p.SubPiece), st.bytes)
					if st.recv < end-1e-6 {
						break
					}
					st.complete = append(st.complete, now)
					if st.src != serverSource {
						st.fromPeers++
					}
				}
				if len(st.complete) == st.b-st.a {
					st.finished = true
				}
			}
			if !n.done && !slices.ContainsFunc(n.stripes, func(st stripe) bool { return !st.finished }) {
				n.done, n.doneAt = true, now
				left--
				from := map[string]int{}
				if _, err := c.Report(dist.Progress{Transfer: transfer, Node: n.name, Held: units, Done: true, From: from}); err != nil {
					return res, fmt.Errorf("sim: report %s: %w", n.name, err)
				}
			}
		}
	}
	for _, n := range nodes {
		res.Done = append(res.Done, n.doneAt)
	}
	slices.Sort(res.Done)
	res.TLast, res.P50 = res.Done[len(res.Done)-1], res.Done[len(res.Done)/2]
	return res, nil
}

// available is how many of a stripe's units its holder can pass on at t:
// those complete HopLatency before t.
func available(st stripe, t, latency time.Duration) int {
	n, _ := slices.BinarySearch(st.complete, t-latency+1)
	return n
}
