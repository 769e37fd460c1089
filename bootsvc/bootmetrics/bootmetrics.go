// Package bootmetrics turns the store's boot-state changes into Prometheus
// figures: how long each boot phase took (histograms), the whole boot to
// booted, and how many nodes run a stale image. It follows the store's
// Watch, so it sees every server's reports (file store: this one; PostgreSQL:
// all of them) and works the same for both backends.
package bootmetrics

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

// Store is what the figures are read from (a store.Store satisfies it).
type Store interface {
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
	States(ctx context.Context) ([]nodestate.Node, error)
	State(ctx context.Context, node string) (nodestate.Node, error)
	Watch(ctx context.Context) <-chan store.Change
}

// Artifacts gives an image's current set; *images.Store satisfies it.
type Artifacts interface {
	Current(name string) (*images.Entry, error)
}

// Buckets are the histograms' upper bounds in seconds: from a DHCP exchange
// on a quiet network to a live boot under TCG.
var Buckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200}

// Metrics observes boots. Run it once; it is not safe to call observe
// concurrently with Run.
type Metrics struct {
	st    Store
	phase *prometheus.HistogramVec
	boot  prometheus.Histogram
	seen  map[string]map[nodestate.State]time.Time // phases already observed, per node
}

// New registers the figures with reg.
func New(reg prometheus.Registerer, st Store, arts Artifacts) (*Metrics, error) {
	if reg == nil || st == nil || arts == nil {
		return nil, errors.New("bootmetrics: Registerer, Store and Artifacts are required")
	}
	m := &Metrics{
		st: st,
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imgctl_boot_phase_duration_seconds", Help: "Time a node spent in a boot phase (dhcp, ipxe, kernel, rootfs) before the next began.",
			Buckets: Buckets,
		}, []string{"phase"}),
		boot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgctl_boot_duration_seconds", Help: "Time from a boot's first phase to booted.", Buckets: Buckets,
		}),
		seen: map[string]map[nodestate.State]time.Time{},
	}
	stale := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imgctl_nodes_stale", Help: "Nodes whose last boot used a digest other than their image's current one.",
	}, func() float64 { return float64(staleNodes(context.Background(), st, arts)) })
	for _, c := range []prometheus.Collector{m.phase, m.boot, stale} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Run observes every phase that begins until ctx ends. Phases recorded
// before Run are not observed again.
func (m *Metrics) Run(ctx context.Context) error {
	changes := m.st.Watch(ctx)
	if list, err := m.st.States(ctx); err == nil {
		for _, n := range list {
			m.seen[n.Name] = copyPhases(n.Phases)
		}
	}
	for c := range changes {
		switch c.Kind {
		case store.StateChanged:
			n, err := m.st.State(ctx, c.Node)
			if err == nil {
				m.observe(n)
			}
		case store.Resync:
			if list, err := m.st.States(ctx); err == nil {
				for _, n := range list {
					m.observe(n)
				}
			}
		}
	}
	return nil
}

type step struct {
	state nodestate.State
	at    time.Time
}

// observe records the phases of n's boot that ended since it was last seen.
func (m *Metrics) observe(n nodestate.Node) {
	prev := m.seen[n.Name]
	var tl []step
	for st, at := range n.Phases {
		if nodestate.Valid(st) {
			tl = append(tl, step{st, at})
		}
	}
	sort.Slice(tl, func(i, j int) bool { return tl[i].at.Before(tl[j].at) })
	for i := 1; i < len(tl); i++ {
		if t, ok := prev[tl[i].state]; ok && t.Equal(tl[i].at) {
			continue // this phase's start was seen: the one before it is counted
		}
		if p := tl[i-1].state; p != nodestate.Booted && p != nodestate.Failed {
			m.phase.WithLabelValues(string(p)).Observe(tl[i].at.Sub(tl[i-1].at).Seconds())
		}
		if tl[i].state == nodestate.Booted {
			m.boot.Observe(tl[i].at.Sub(tl[0].at).Seconds())
		}
	}
	m.seen[n.Name] = copyPhases(n.Phases)
}

func copyPhases(p map[nodestate.State]time.Time) map[nodestate.State]time.Time {
	c := make(map[nodestate.State]time.Time, len(p))
	for k, v := range p {
		c[k] = v
	}
	return c
}

// staleNodes counts inventory nodes whose booted digest is not their
// image's current one (0 when the store cannot be read).
func staleNodes(ctx context.Context, st Store, arts Artifacts) int {
	inv, err := st.Snapshot(ctx)
	if err != nil {
		return 0
	}
	states, err := st.States(ctx)
	if err != nil {
		return 0
	}
	current := map[string]string{}
	digest := func(image string) string {
		d, ok := current[image]
		if !ok {
			if e, err := arts.Current(image); err == nil && e.Manifest != nil {
				d = e.Manifest.ImageDigest
			}
			current[image] = d
		}
		return d
	}
	n := 0
	for _, s := range states {
		node, ok := inv.Node(s.Name)
		if ok && node.Image != "" && nodestate.Stale(s, digest(node.Image)) {
			n++
		}
	}
	return n
}
