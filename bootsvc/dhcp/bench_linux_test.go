package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

const benchHosts = 1000

func benchMAC(i int) net.HardwareAddr { return net.HardwareAddr{2, 0x42, 0, 0, byte(i >> 8), byte(i)} }
func benchIP(i int) net.IP            { return net.IP{10, 41, 129 + byte(i/250), byte(1 + i%250)} }

// run does n exchanges with w in flight; dora adds REQUEST/ACK. It returns
// exchanges per second and the number that failed.
func run(l *dhcptest.Loadgen, n, w int, dora bool) (float64, int) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, _ := dhcpv4.NewDiscovery(benchMAC(i), dhcpv4.WithBroadcast(true))
				offer, err := l.Ask(context.Background(), d, dhcpv4.MessageTypeOffer)
				if err == nil && dora {
					var req *dhcpv4.DHCPv4
					if req, err = dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true)); err == nil {
						_, err = l.Ask(context.Background(), req, dhcpv4.MessageTypeAck)
					}
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), int(failed.Load())
}

func TestBenchDHCP(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") != "1" {
		t.Skip("benchmark: set IMGCTL_BENCH=1")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "dnsmasq", "ip")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "db", ServerAddr: "10.41.128.1/17", ClientAddr: "10.41.128.2/17"})
	srvNS, cliNS, srvIf, cliIf := p.Server, p.Client, p.ServerIf, p.ClientIf
	dir := t.TempDir()

	// The same 1,000 static hosts for both servers.
	inv, fs := benchInventory(t, ctx, dir, benchHosts)
	var hosts strings.Builder
	for i := 0; i < benchHosts; i++ {
		fmt.Fprintf(&hosts, "%s,%s,n%04d\n", benchMAC(i), benchIP(i), i)
	}
	hostsPath := filepath.Join(dir, "hosts")
	os.WriteFile(hostsPath, []byte(hosts.String()), 0o644)
	lg := dhcptest.New(t, cliNS, cliIf)
	const window = 16

	ours := func(nodes Nodes, states StateRecorder) (offer, dora float64, failed int) {
		defer startBenchServer(t, ctx, p, nodes, states)()
		offer, f1 := run(lg, benchHosts, window, false)
		dora, f2 := run(lg, benchHosts, window, true)
		return offer, dora, f1 + f2
	}
	theirs := func() (offer, dora float64, failed int) {
		cmd := srvNS.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
			"--interface="+srvIf, "--bind-interfaces", "--dhcp-range=10.41.128.0,static,255.255.128.0,1h",
			"--dhcp-hostsfile="+hostsPath, "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"), "--dhcp-authoritative",
			"--dhcp-boot=undionly.kpxe", "--no-ping", "--pid-file=", "--log-facility="+filepath.Join(dir, "dnsmasq.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }() // stopped by PID: the process we started
		// Wait until it answers.
		for i := 0; ; i++ {
			d, _ := dhcpv4.NewDiscovery(benchMAC(0), dhcpv4.WithBroadcast(true))
			if _, err := lg.Ask(context.Background(), d, dhcpv4.MessageTypeOffer); err == nil {
				break
			}
			if i == 10 {
				b, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
				t.Fatalf("dnsmasq never answered: %s", b)
			}
		}
		offer, f1 := run(lg, benchHosts, window, false)
		dora, f2 := run(lg, benchHosts, window, true)
		return offer, dora, f1 + f2
	}
	// The same hosts on PostgreSQL (bench/results/store_dhcp.json).
	pg := pgtest.Start(t)
	ps, err := pgstore.Open(ctx, pgstore.Options{URL: pg.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if err := ps.Import(ctx, &store.Dump{Version: store.DumpVersion, Inventory: inv.File()}); err != nil {
		t.Fatal(err)
	}
	var oo, od, do, dd, po, pd []float64
	for round := 0; round < 3; round++ {
		o1, o2, f := ours(fs, fs)
		if f > 0 {
			t.Errorf("imgctl: %d exchanges failed", f)
		}
		p1, p2, f := ours(ps, ps)
		if f > 0 {
			t.Errorf("imgctl on PostgreSQL: %d exchanges failed", f)
		}
		po, pd = append(po, p1), append(pd, p2)
		t.Logf("round %d: imgctl on PostgreSQL offer %.0f/s dora %.0f/s", round, p1, p2)
		d1, d2, f := theirs()
		if f > 0 {
			t.Logf("dnsmasq: %d exchanges failed", f)
		}
		oo, od, do, dd = append(oo, o1), append(od, o2), append(do, d1), append(dd, d2)
		t.Logf("round %d: imgctl offer %.0f/s dora %.0f/s; dnsmasq offer %.0f/s dora %.0f/s", round, o1, o2, d1, d2)
	}
	figures := map[string]any{
		"hosts": benchHosts, "in_flight": window, "rounds": 3,
		"imgctl_offers_per_s": median(oo), "imgctl_dora_per_s": median(od),
		"dnsmasq_offers_per_s": median(do), "dnsmasq_dora_per_s": median(dd),
		"offer_ratio_vs_dnsmasq": median(oo) / median(do), "dora_ratio_vs_dnsmasq": median(od) / median(dd),
	}
	t.Logf("figures: %v", figures)
	if err := benchresult.Write("dhcp.json", figures); err != nil {
		t.Fatal(err)
	}
	pgFigures := map[string]any{
		"hosts": benchHosts, "in_flight": window, "rounds": 3,
		"file_offers_per_s": median(oo), "file_dora_per_s": median(od),
		"pg_offers_per_s": median(po), "pg_dora_per_s": median(pd),
		"pg_vs_file_offers": median(po) / median(oo), "pg_vs_file_dora": median(pd) / median(od),
	}
	t.Logf("store figures: %v", pgFigures)
	if err := benchresult.Write("store_dhcp.json", pgFigures); err != nil {
		t.Fatal(err)
	}
}

// benchInventory writes n static hosts to dir/nodes.yaml and opens them with
// the file backend, as imgctl serve runs it by default.
func benchInventory(t *testing.T, ctx context.Context, dir string, n int) (*inventory.Inventory, *filestore.Store) {
	t.Helper()
	// One parse validates all n (Put revalidates the whole inventory each time).
	file := inventory.File{Nodes: map[string]*inventory.Node{}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%04d", i)
		file.Nodes[name] = &inventory.Node{Name: name, MACs: []string{benchMAC(i).String()}, IP: benchIP(i).String()}
	}
	data, err := yaml.Marshal(&file)
	if err != nil {
		t.Fatal(err)
	}
	invPath := filepath.Join(dir, "nodes.yaml")
	inv, err := inventory.Parse(invPath, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.Save(invPath); err != nil {
		t.Fatal(err)
	}
	fs, err := filestore.Open(ctx, filestore.Options{StateDir: dir, Inventory: invPath, Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return inv, fs
}

// startBenchServer runs our DHCP server in the pair's server namespace over
// nodes and states; the returned func stops it.
func startBenchServer(t *testing.T, ctx context.Context, p *nstest.Pair, nodes Nodes, states StateRecorder) (stop func()) {
	t.Helper()
	cfg := Defaults()
	cfg.Enabled, cfg.Interface, cfg.ServerIP = true, p.ServerIf, "10.41.128.1"
	cfg.Subnets = []Subnet{{Network: "10.41.128.0/17"}}
	s, err := New(cfg, Deps{Nodes: nodes, Boot: firmwareOnly(cfg), States: states})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Server.Do(func() (err error) {
		s.deps.Conn, err = server4.NewIPv4UDPConn(p.ServerIf, &net.UDPAddr{Port: 67})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()
	return func() { scancel(); <-done }
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
