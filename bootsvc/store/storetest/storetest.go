// Package storetest is the conformance suite every store backend runs: the
// in-memory fake, the file backend, and any backend to come.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// Open returns a new, empty store of the backend under test; the suite
// closes it.
type Open func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"Lookups", testLookups},
		{"UpdateIsAtomic", testUpdateIsAtomic},
		{"BootStates", testBootStates},
		{"BootTimeline", testBootTimeline},
		{"Watch", testWatch},
		{"Leases", testLeases},
		{"LeasesConcurrent", testLeasesConcurrent},
		{"HostKeys", testHostKeys},
		{"ExportImport", testExportImport},
		{"CloudInit", testCloudInit},
		{"InstanceIDs", testInstanceIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func opened(t *testing.T, open Open) store.Store {
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// seed puts a group and two nodes in s.
func seed(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	err := s.Update(ctx, func(inv *inventory.Inventory) error {
		if err := inv.PutGroup("compute", inventory.Group{Settings: inventory.Settings{Image: "compute-base", Mode: inventory.ModeLive, Vars: map[string]string{"site": "a"}}}); err != nil {
			return err
		}
		if err := inv.Put(inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.41.0.11", Groups: []string{"compute"}}); err != nil {
			return err
		}
		return inv.Put(inventory.Node{Name: "nid002", MACs: []string{"02:00:00:00:00:02"}, IP: "10.41.0.12", Groups: []string{"compute"},
			Settings: inventory.Settings{Mode: inventory.ModeNFS}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testLookups(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	if _, err := s.Node(ctx, "nid001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty store: Node err = %v, want ErrNotFound", err)
	}
	seed(t, ctx, s)
	byName, err := s.Node(ctx, "nid002")
	if err != nil {
		t.Fatal(err)
	}
	if byName.Image != "compute-base" || byName.Mode != inventory.ModeNFS || byName.Vars["site"] != "a" {
		t.Fatalf("nid002 not merged with its group: %+v", byName.Settings)
	}
	byMAC, err := s.NodeByMAC(ctx, mustMAC("02:00:00:00:00:02"))
	if err != nil {
		t.Fatal(err)
	}
	byIP, err := s.NodeByIP(ctx, netip.MustParseAddr("10.41.0.12"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(byName, byMAC); diff != "" {
		t.Errorf("by MAC (-name +mac):\n%s", diff)
	}
	if diff := cmp.Diff(byName, byIP); diff != "" {
		t.Errorf("by IP (-name +ip):\n%s", diff)
	}
	for _, lookup := range []func() error{
		func() error { _, err := s.NodeByMAC(ctx, mustMAC("02:00:00:00:00:09")); return err },
		func() error { _, err := s.NodeByIP(ctx, netip.MustParseAddr("10.41.0.99")); return err },
	} {
		if err := lookup(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown node: err = %v, want ErrNotFound", err)
		}
	}
	inv, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := inv.Select("nid[001-002]"); err != nil || len(got) != 2 {
		t.Fatalf("select nid[001-002]: %d nodes, %v", len(got), err)
	}
}

func testUpdateIsAtomic(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	seed(t, ctx, s)
	boom := errors.New("boom")
	err := s.Update(ctx, func(inv *inventory.Inventory) error {
		inv.Remove("nid001")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing update: err = %v, want boom", err)
	}
	if _, err := s.Node(ctx, "nid001"); err != nil {
		t.Fatalf("failing update changed the inventory: %v", err)
	}
	err = s.Update(ctx, func(inv *inventory.Inventory) error {
		n, _ := inv.Raw("nid002")
		n.IP = "10.41.0.11" // nid001's
		return inv.Put(n)
	})
	if err == nil {
		t.Fatal("duplicate IP accepted")
	}
	// Concurrent writers lose nothing.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- s.Update(ctx, func(inv *inventory.Inventory) error {
				return inv.Put(inventory.Node{Name: fmt.Sprintf("c%02d", i), IP: fmt.Sprintf("10.41.2.%d", i+1)})
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inv, _ := s.Snapshot(ctx)
	if got := inv.Len(); got != 22 {
		t.Fatalf("after 20 concurrent adds: %d nodes, want 22", got)
	}
}

func testBootStates(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	if _, err := s.State(ctx, "nid001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no state yet: err = %v, want ErrNotFound", err)
	}
	steps := []nodestate.Report{
		{State: nodestate.DHCP, Detail: "ack"},
		{State: nodestate.IPXE, ImageDigest: "sha256:aa"},
		{State: nodestate.Kernel},
		{State: nodestate.InitrdDHCP},
		{State: nodestate.RootFS},
		{State: nodestate.Booted, RootMount: "overlay", Hostname: "nid001"},
	}
	for _, r := range steps {
		if err := s.Report(ctx, "nid001", r); err != nil {
			t.Fatalf("report %s: %v", r.State, err)
		}
	}
	n, err := s.State(ctx, "nid001")
	if err != nil {
		t.Fatal(err)
	}
	var phases []nodestate.State
	for _, st := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.InitrdDHCP, nodestate.RootFS, nodestate.Booted} {
		if _, ok := n.Phases[st]; ok {
			phases = append(phases, st)
		}
	}
	if len(phases) != 6 || n.State != nodestate.Booted || n.ImageDigest != "sha256:aa" || n.RootMount != "overlay" {
		t.Fatalf("after a whole boot: state %s, phases %v, digest %q, root %q", n.State, phases, n.ImageDigest, n.RootMount)
	}
	// A renewal of a running node's lease is not a phase; a new DHCP is a new boot.
	if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.InitrdDHCP}); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.Failed, Reason: "root image corrupt"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.DHCP}); err != nil {
		t.Fatal(err)
	}
	n, _ = s.State(ctx, "nid001")
	if len(n.Phases) != 1 || n.Reason != "" || n.ImageDigest != "sha256:aa" {
		t.Fatalf("new boot: phases %v, reason %q, digest %q; want only dhcp, no reason, last digest kept", n.Phases, n.Reason, n.ImageDigest)
	}
	if err := s.Report(ctx, "nid001", nodestate.Report{State: "exploded"}); err == nil {
		t.Fatal("unknown state accepted")
	}
	all, err := s.States(ctx)
	if err != nil || len(all) != 1 || all[0].Name != "nid001" {
		t.Fatalf("States = %v, %v", all, err)
	}
}

func testWatch(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	wctx, stop := context.WithCancel(ctx)
	ch := s.Watch(wctx)
	seed(t, ctx, s)
	waitFor(t, ctx, ch, func(c store.Change) bool { return c.Kind == store.InventoryChanged || c.Kind == store.Resync })
	if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.DHCP}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, ch, func(c store.Change) bool {
		return (c.Kind == store.StateChanged && c.Node == "nid001") || c.Kind == store.Resync
	})
	stop()
	for range ch { // closed once the watch's context ends
	}
}

func waitFor(t *testing.T, ctx context.Context, ch <-chan store.Change, match func(store.Change) bool) {
	t.Helper()
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("watch closed early")
			}
			if match(c) {
				return
			}
		case <-ctx.Done():
			t.Fatal("no change notification")
		}
	}
}

func testLeases(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	seed(t, ctx, s) // nid001 holds 10.41.0.11
	req := func(mac string) store.LeaseRequest {
		return store.LeaseRequest{MAC: mustMAC(mac), First: netip.MustParseAddr("10.41.0.10"), Last: netip.MustParseAddr("10.41.0.12"), TTL: time.Minute}
	}
	a, err := s.Lease(ctx, req("02:00:00:00:01:01"))
	if err != nil || a != netip.MustParseAddr("10.41.0.10") {
		t.Fatalf("first lease = %v, %v; want 10.41.0.10", a, err)
	}
	again, err := s.Lease(ctx, req("02:00:00:00:01:01"))
	if err != nil || again != a {
		t.Fatalf("renewal = %v, %v; want %v", again, err, a)
	}
	// .11 and .12 are inventory nodes' addresses: the pool is full.
	if _, err := s.Lease(ctx, req("02:00:00:00:01:02")); !errors.Is(err, store.ErrPoolExhausted) {
		t.Fatalf("lease from a full pool: err = %v, want ErrPoolExhausted", err)
	}
	if err := s.Release(ctx, mustMAC("02:00:00:00:01:01")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Lease(ctx, req("02:00:00:00:01:02")); err != nil || b != a {
		t.Fatalf("lease after release = %v, %v; want %v", b, err, a)
	}
}

func testLeasesConcurrent(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	const n = 100
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256)
			a, err := s.Lease(ctx, store.LeaseRequest{MAC: mustMAC(mac), First: netip.MustParseAddr("10.41.3.1"), Last: netip.MustParseAddr("10.41.3.200"), TTL: time.Minute})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := seen[a]; dup {
				errs <- fmt.Errorf("%s leased to %s and %s", a, other, mac)
			}
			seen[a] = mac
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != n {
		t.Fatalf("%d distinct addresses for %d MACs", len(seen), n)
	}
}

func testHostKeys(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	if _, err := s.PublicHostKey(ctx, "nid001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no key yet: err = %v, want ErrNotFound", err)
	}
	k, err := s.HostKey(ctx, "nid001")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.HostKey(ctx, "nid001")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(k, again); diff != "" {
		t.Fatalf("host key changed between calls:\n%s", diff)
	}
	pub, err := s.PublicHostKey(ctx, "nid001")
	if err != nil || string(pub) != string(k.Public) {
		t.Fatalf("public key = %q, %v; want %q", pub, err, k.Public)
	}
}

func testExportImport(t *testing.T, open Open) {
	ctx := ctxFor(t)
	src := opened(t, open)
	seed(t, ctx, src)
	for _, r := range []nodestate.Report{{State: nodestate.DHCP}, {State: nodestate.IPXE, ImageDigest: "sha256:bb"}} {
		if err := src.Report(ctx, "nid002", r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.HostKey(ctx, "nid002"); err != nil {
		t.Fatal(err)
	}
	putCloudInit(t, ctx, src)
	if _, err := src.InstanceID(ctx, "nid001", "sha256:aa"); err != nil {
		t.Fatal(err)
	}
	d, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst := opened(t, open)
	if err := dst.Import(ctx, d); err != nil {
		t.Fatal(err)
	}
	back, err := dst.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Fatalf("export → import → export (-first +second):\n%s", diff)
	}
	if len(back.CloudInit) != 3 || len(back.InstanceIDs) != 1 {
		t.Fatalf("imported store: %d cloud-init records, %d instance-ids; want 3 and 1", len(back.CloudInit), len(back.InstanceIDs))
	}
	if n, err := dst.NodeByMAC(ctx, mustMAC("02:00:00:00:00:02")); err != nil || n.Name != "nid002" {
		t.Fatalf("imported store: by MAC = %v, %v", n.Name, err)
	}
	bad := *d
	bad.Version = store.DumpVersion + 1
	if err := dst.Import(ctx, &bad); err == nil {
		t.Fatal("dump from a newer imgctl imported")
	}
}

// testBootTimeline: the systemd timeline a booted node reports is kept with
// its state, read back whole, dropped by the next boot, and refused when no
// node could have measured it.
func testBootTimeline(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	tl := &nodestate.Timeline{KernelS: 4.2, InitrdS: 40.5, UserspaceS: 21.3,
		Slowest: []nodestate.UnitTime{{Unit: "systemd-udev-trigger.service", Seconds: 6.5}, {Unit: "rpcbind.service", Seconds: 1.25}}}
	for _, r := range []nodestate.Report{{State: nodestate.DHCP}, {State: nodestate.RootFS}, {State: nodestate.Booted, Timeline: tl}} {
		if err := s.Report(ctx, "nid001", r); err != nil {
			t.Fatalf("report %s: %v", r.State, err)
		}
	}
	n, err := s.State(ctx, "nid001")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(tl, n.Timeline); d != "" {
		t.Fatalf("timeline read back (-want +got):\n%s", d)
	}
	all, err := s.States(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("States = %v, %v", all, err)
	}
	if d := cmp.Diff(tl, all[0].Timeline); d != "" {
		t.Fatalf("timeline in States (-want +got):\n%s", d)
	}
	bad := []nodestate.Report{
		{State: nodestate.RootFS, Timeline: tl},
		{State: nodestate.Booted, Timeline: &nodestate.Timeline{UserspaceS: -1}},
		{State: nodestate.Booted, Timeline: &nodestate.Timeline{Slowest: make([]nodestate.UnitTime, nodestate.MaxUnits+1)}},
		{State: nodestate.Booted, Timeline: &nodestate.Timeline{Slowest: []nodestate.UnitTime{{Unit: "a b", Seconds: 1}}}},
	}
	for i, r := range bad {
		if err := s.Report(ctx, "nid001", r); err == nil {
			t.Errorf("bad timeline %d (%s) accepted", i, r.State)
		}
	}
	if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.DHCP}); err != nil {
		t.Fatal(err)
	}
	if n, _ = s.State(ctx, "nid001"); n.Timeline != nil {
		t.Errorf("a new boot kept the last boot's timeline %+v", n.Timeline)
	}
}
