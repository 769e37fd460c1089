package bootmetrics

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

// currentSets answers Current from a map of image → digest.
type currentSets map[string]string

func (c currentSets) Current(name string) (*images.Entry, error) {
	d, ok := c[name]
	if !ok {
		return nil, images.ErrNotFound
	}
	return &images.Entry{Current: true, Manifest: &images.Manifest{Name: name, ImageDigest: d}}, nil
}

func newMemory(t *testing.T) *store.Memory {
	t.Helper()
	mem := store.NewMemory()
	f := inventory.File{Nodes: map[string]*inventory.Node{
		"n1": {MACs: []string{"02:00:00:00:00:01"}, Settings: inventory.Settings{Image: "img"}},
		"n2": {MACs: []string{"02:00:00:00:00:02"}, Settings: inventory.Settings{Image: "img"}},
		"n3": {MACs: []string{"02:00:00:00:00:03"}, Settings: inventory.Settings{Image: "img"}},
	}}
	if err := mem.Import(context.Background(), &store.Dump{Version: store.DumpVersion, Inventory: f}); err != nil {
		t.Fatal(err)
	}
	return mem
}

// histogram returns the sample count and sum of a histogram.
func histogram(t *testing.T, h prometheus.Observer) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, newMemory(t), currentSets{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	n := nodestate.Node{Name: "n1", State: nodestate.Kernel, Phases: map[nodestate.State]time.Time{"dhcp": at(0), "ipxe": at(2), "kernel": at(5)}}
	m.observe(n)
	n.Phases["initrd-dhcp"], n.Phases["rootfs"], n.Phases["booted"] = at(20), at(30), at(40)
	n.State = nodestate.Booted
	m.observe(n)
	m.observe(n) // seen already: nothing new
	got := map[string][2]float64{}
	for _, p := range []string{"dhcp", "ipxe", "kernel", "rootfs"} {
		c, s := histogram(t, m.phase.WithLabelValues(p))
		got[p] = [2]float64{float64(c), s}
	}
	c, s := histogram(t, m.boot)
	got["boot"] = [2]float64{float64(c), s}
	want := map[string][2]float64{"dhcp": {1, 2}, "ipxe": {1, 3}, "kernel": {1, 25}, "rootfs": {1, 10}, "boot": {1, 40}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("observations (-want +got):\n%s", diff)
	}
}

// TestRunFollowsStore: reports made through the store reach the
// histograms, and stale nodes are counted at scrape time.
func TestRunFollowsStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mem := newMemory(t)
	reg := prometheus.NewRegistry()
	m, err := New(reg, mem, currentSets{"img": "sha256:new"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	// Run subscribes in its own time: boot n1 again until a boot is seen.
	for booted := false; !booted; {
		for _, r := range []struct {
			node   string
			state  nodestate.State
			digest string
		}{
			{"n1", "dhcp", ""}, {"n1", "ipxe", ""}, {"n1", "kernel", "sha256:old"}, {"n1", "rootfs", ""}, {"n1", "booted", ""},
			{"n2", "dhcp", ""}, {"n2", "kernel", "sha256:new"},
		} {
			if err := mem.Report(ctx, r.node, nodestate.Report{State: r.state, ImageDigest: r.digest}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 20 && !booted; i++ {
			c, _ := histogram(t, m.boot)
			booted = c > 0
			select {
			case <-ctx.Done():
				t.Fatal("booted never observed")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if c, _ := histogram(t, m.phase.WithLabelValues("rootfs")); c == 0 {
		t.Error("rootfs phase never observed")
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	stale := -1.0
	for _, f := range fams {
		if f.GetName() == "imgctl_nodes_stale" {
			stale = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if stale != 1 {
		t.Errorf("stale nodes %v, want 1 (n1 booted sha256:old)", stale)
	}
	cancel()
	<-done
}
