package dhcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchDHCPKea measures our DHCP server against ISC Kea, the server a
// site would run instead, on the same static reservations: Kea with memfile
// leases (persisted, as Kea ships) and multi-threading on. At 1,000 and
// 10,000 hosts it reports OFFER and full DORA rates with 16 exchanges in
// flight, then lets all 10,000 hosts ask at once (each retrying as a PXE ROM
// does) and counts the hosts left without a lease. Writes dhcp_kea.json.
func TestBenchDHCPKea(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") != "1" {
		t.Skip("benchmark: set IMGCTL_BENCH=1")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "kea-dhcp4", "ip")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "dk", ServerAddr: "10.41.128.1/17", ClientAddr: "10.41.128.2/17"})
	lg := dhcptest.New(t, p.Client, p.ClientIf)
	if err := lg.SetReadBuffer(16 << 20); err != nil {
		t.Fatal(err)
	}
	const window = 16
	figures := map[string]any{"in_flight": window, "rounds": 3, "kea_leases": "memfile, persist", "kea_threads": 2, "kea_packet_queue": keaPacketQueue}
	for _, hosts := range []int{1000, 10000} {
		dir := t.TempDir()
		_, fs := benchInventory(t, ctx, dir, hosts)
		kea := keaConfig(t, dir, p.ServerIf, hosts)
		var oo, od, ko, kd []float64
		for round := 0; round < 3; round++ {
			stop := startBenchServer(t, ctx, p, fs, fs)
			o1, f1 := run(lg, hosts, window, false)
			o2, f2 := run(lg, hosts, window, true)
			stop()
			stop = startKea(t, ctx, p, lg, kea)
			k1, g1 := run(lg, hosts, window, false)
			k2, g2 := run(lg, hosts, window, true)
			stop()
			if f1+f2 > 0 || g1+g2 > 0 {
				t.Errorf("%d hosts round %d: %d of our exchanges failed, %d of Kea's", hosts, round, f1+f2, g1+g2)
			}
			oo, od, ko, kd = append(oo, o1), append(od, o2), append(ko, k1), append(kd, k2)
			t.Logf("%d hosts round %d: imgctl offer %.0f/s dora %.0f/s; kea offer %.0f/s dora %.0f/s", hosts, round, o1, o2, k1, k2)
		}
		key := fmt.Sprintf("hosts_%d_", hosts)
		figures[key+"imgctl_offers_per_s"], figures[key+"imgctl_dora_per_s"] = median(oo), median(od)
		figures[key+"kea_offers_per_s"], figures[key+"kea_dora_per_s"] = median(ko), median(kd)
		figures[key+"offer_ratio_vs_kea"] = median(oo) / median(ko)
		figures[key+"dora_ratio_vs_kea"] = median(od) / median(kd)

		if hosts == 10000 {
			// Everyone at once: a whole-cluster power-on.
			lg.Tries, lg.Wait = 6, 2*time.Second
			stop := startBenchServer(t, ctx, p, fs, fs)
			start := time.Now()
			_, lost := run(lg, hosts, hosts, true)
			ours := time.Since(start)
			stop()
			stop = startKea(t, ctx, p, lg, kea)
			start = time.Now()
			_, keaLost := run(lg, hosts, hosts, true)
			theirs := time.Since(start)
			stop()
			lg.Tries, lg.Wait = 3, time.Second
			t.Logf("10,000 at once: imgctl %d without lease in %v; kea %d in %v", lost, ours, keaLost, theirs)
			if lost > 0 {
				t.Errorf("10,000 hosts at once: %d got no lease from imgctl", lost)
			}
			figures["burst_hosts"] = hosts
			figures["burst_imgctl_unleased"], figures["burst_kea_unleased"] = lost, keaLost
			figures["burst_imgctl_seconds"], figures["burst_kea_seconds"] = ours.Seconds(), theirs.Seconds()
			figures["burst_time_ratio_vs_kea"] = ours.Seconds() / theirs.Seconds()
		}
	}
	for k, v := range benchresult.Host() {
		figures[k] = v
	}
	t.Logf("figures: %v", figures)
	if err := benchresult.Write("dhcp_kea.json", figures); err != nil {
		t.Fatal(err)
	}
}

// keaPacketQueue is Kea's multi-threading packet queue. Its default, 64,
// drops most of a 10,000-host burst (1,700-3,700 hosts left unleased here);
// a site expecting storms raises it, and so does this baseline.
const keaPacketQueue = 1024

// keaConfig writes a kea-dhcp4 configuration with the bench hosts as
// reservations (the same MACs and addresses benchInventory gives us) and
// returns its path.
func keaConfig(t *testing.T, dir, ifname string, hosts int) string {
	t.Helper()
	type reservation struct {
		HWAddress string `json:"hw-address"`
		IPAddress string `json:"ip-address"`
		Hostname  string `json:"hostname"`
	}
	res := make([]reservation, hosts)
	for i := range res {
		res[i] = reservation{benchMAC(i).String(), benchIP(i).String(), fmt.Sprintf("n%04d", i)}
	}
	cfg := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{ifname}, "dhcp-socket-type": "raw"},
		"lease-database": map[string]any{
			"type": "memfile", "persist": true, "name": filepath.Join(dir, "kea-leases4.csv"), "lfc-interval": 3600,
		},
		"multi-threading": map[string]any{
			"enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": keaPacketQueue,
		},
		"valid-lifetime":               3600,
		"authoritative":                true,
		"host-reservation-identifiers": []string{"hw-address"},
		"subnet4": []any{map[string]any{
			"id": 1, "subnet": "10.41.128.0/17", "boot-file-name": "undionly.kpxe", "next-server": "10.41.128.1",
			"reservations": res,
		}},
		"loggers": []any{map[string]any{
			"name": "kea-dhcp4", "severity": "WARN",
			"output_options": []any{map[string]any{"output": filepath.Join(dir, "kea.log")}},
		}},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kea-dhcp4.conf")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startKea runs kea-dhcp4 in the server namespace and waits until it
// answers; the returned func stops it (by PID: the process started here).
func startKea(t *testing.T, ctx context.Context, p *nstest.Pair, lg *dhcptest.Loadgen, conf string) (stop func()) {
	t.Helper()
	dir := filepath.Dir(conf)
	os.Remove(filepath.Join(dir, "kea-leases4.csv")) // every run starts without leases, as ours does
	cmd := p.Server.Command(ctx, "kea-dhcp4", "-c", conf)
	cmd.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir)
	out, err := os.Create(filepath.Join(dir, "kea.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
	}
	// Kea reads 10,000 reservations before it opens its socket: ask until
	// it answers or exits.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, _ := dhcpv4.NewDiscovery(benchMAC(0), dhcpv4.WithBroadcast(true))
		if _, err := lg.Ask(ctx, d, dhcpv4.MessageTypeOffer); err == nil {
			return stop
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "kea.out"))
			l, _ := os.ReadFile(filepath.Join(dir, "kea.log"))
			t.Fatalf("kea-dhcp4 exited: %v\n%s\n%s", err, b, l)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			l, _ := os.ReadFile(filepath.Join(dir, "kea.log"))
			t.Fatalf("kea-dhcp4 never answered:\n%s", l)
		}
	}
}
