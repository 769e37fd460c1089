package test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchStoreServe measures the DHCP DORA rate of the real `imgctl serve`
// for 1,000 inventory hosts on the file store and on PostgreSQL, 16 exchanges
// in flight, as a ratio PostgreSQL/file (bench/results/store_serve.json;
// make bench only).
func TestBenchStoreServe(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "runuser")
	const hosts, window = 1000, 16
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	state := t.TempDir()
	macs, macFile := writeMACs(t, "02:51:01", hosts)
	for _, where := range [][]string{{"--state", state}, {"--state", state, "--store", db}} {
		args := append(where, "-q", "node", "add", "bs[0001-1000]", "--mac-file", macFile, "--ip", "10.51.[1-4].[1-250]", "--netmask", "255.255.0.0")
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("node add: %v: %s", err, out)
		}
	}
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "bs", ServerAddr: "10.51.0.1/16", ClientAddr: "10.51.0.2/16"})
	gen := dhcptest.New(t, p.Client, p.ClientIf)

	rate := func(store string) float64 {
		args := []string{"--state", state, "serve", "--interface", p.ServerIf, "--address", "10.51.0.1", "--tftp=false", "--http=false"}
		if store != "" {
			args = append([]string{"--store", store}, args...)
		}
		logf, _ := os.Create(filepath.Join(state, "serve.log"))
		defer logf.Close()
		serve := p.Server.Command(context.Background(), append([]string{bin}, args...)...)
		serve.Stdout, serve.Stderr = logf, logf
		if err := serve.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() }()
		mac0, _ := net.ParseMAC(macs[0])
		for try := 0; ; try++ { // answering yet?
			if _, err := gen.DORA(ctx, mac0); err == nil {
				break
			}
			if try == 20 {
				b, _ := os.ReadFile(filepath.Join(state, "serve.log"))
				t.Fatalf("serve never answered:\n%s", tailString(string(b), 2000))
			}
		}
		var failed atomic.Int64
		start := time.Now()
		parallel(hosts, window, func(i int) {
			mac, _ := net.ParseMAC(macs[i])
			if _, err := gen.DORA(ctx, mac); err != nil {
				failed.Add(1)
			}
		})
		r := float64(hosts) / time.Since(start).Seconds()
		if n := failed.Load(); n > 0 {
			t.Errorf("%d of %d exchanges failed", n, hosts)
		}
		return r
	}
	var file, pgr []float64
	for round := 0; round < 3; round++ {
		f, q := rate(""), rate(db)
		file, pgr = append(file, f), append(pgr, q)
		t.Logf("round %d: DORA through serve: file %.0f/s, PostgreSQL %.0f/s", round, f, q)
	}
	med := func(v []float64) float64 { s := append([]float64(nil), v...); sort.Float64s(s); return s[len(s)/2] }
	figures := map[string]any{"hosts": hosts, "in_flight": window, "rounds": 3,
		"file_dora_per_s": med(file), "pg_dora_per_s": med(pgr), "pg_vs_file_dora": med(pgr) / med(file)}
	t.Logf("figures: %v", figures)
	if err := benchresult.Write("store_serve.json", figures); err != nil {
		t.Fatal(err)
	}
}
