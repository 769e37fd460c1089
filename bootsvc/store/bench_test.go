package store_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/internal/benchresult"
)

// TestBenchStore measures, for 10,000 nodes, lookups by MAC and by IP and
// boot-phase writes on the file backend and on PostgreSQL, as ops/s and as
// the PostgreSQL/file ratio (bench/results/store.json; make bench only).
func TestBenchStore(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	const hosts = 10000
	ctx := context.Background()
	dump := &store.Dump{Version: store.DumpVersion, Inventory: inventory.File{Nodes: map[string]*inventory.Node{}}}
	macs := make([]net.HardwareAddr, hosts)
	ips := make([]netip.Addr, hosts)
	for i := 0; i < hosts; i++ {
		macs[i] = net.HardwareAddr{2, 0x4a, 0, 0, byte(i >> 8), byte(i)}
		ips[i] = netip.AddrFrom4([4]byte{10, 50, byte(i >> 8), byte(i)})
		dump.Inventory.Nodes[fmt.Sprintf("n%05d", i)] = &inventory.Node{MACs: []string{macs[i].String()}, IP: ips[i].String()}
	}
	fs, err := filestore.Open(ctx, filestore.Options{StateDir: t.TempDir(), Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	pg := pgtest.Start(t)
	ps, err := pgstore.Open(ctx, pgstore.Options{URL: pg.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()

	figures := map[string]any{"nodes": hosts}
	for _, b := range []struct {
		name   string
		s      store.Store
		writes int
	}{{"file", fs, 20000}, {"pg", ps, 3000}} {
		if err := b.s.Import(ctx, dump); err != nil {
			t.Fatal(err)
		}
		// A write counts once it is readable back (PostgreSQL writes behind).
		rate := func(n int, op func(i int) error) float64 {
			start := time.Now()
			for i := 0; i < n; i++ {
				if err := op(i); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.s.States(ctx); err != nil {
				t.Fatal(err)
			}
			return float64(n) / time.Since(start).Seconds()
		}
		figures[b.name+"_lookup_mac_per_s"] = rate(200000, func(i int) error { _, err := b.s.NodeByMAC(ctx, macs[i*7919%hosts]); return err })
		figures[b.name+"_lookup_ip_per_s"] = rate(200000, func(i int) error { _, err := b.s.NodeByIP(ctx, ips[i*7919%hosts]); return err })
		figures[b.name+"_phase_write_per_s"] = rate(b.writes, func(i int) error {
			return b.s.Report(ctx, fmt.Sprintf("n%05d", i*7919%hosts), nodestate.Report{State: nodestate.DHCP})
		})
	}
	for _, k := range []string{"lookup_mac_per_s", "lookup_ip_per_s", "phase_write_per_s"} {
		figures["pg_vs_file_"+k] = figures["pg_"+k].(float64) / figures["file_"+k].(float64)
	}
	t.Logf("store: %v", figures)
	if err := benchresult.Write("store.json", figures); err != nil {
		t.Fatal(err)
	}
}
