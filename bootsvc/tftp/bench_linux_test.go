package tftp

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchTFTP sends a 1 MiB file to 50 concurrent tftp-hpa clients from
// our server and from tftp-hpa's in.tftpd, in the same run, and writes the
// aggregate throughput ratio to tftp.json.
func TestBenchTFTP(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") != "1" {
		t.Skip("benchmark: set IMGCTL_BENCH=1")
	}
	testenv.RequireCommands(t, "tftp", "in.tftpd")
	const clients, size, rounds = 50, 1 << 20, 3
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newPair(t, ctx, "10.41.7")
	root := t.TempDir()
	os.Chmod(root, 0o755)
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()

	// fetch runs the clients at once and returns MiB/s over all of them.
	fetch := func(who string) float64 {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		start := time.Now()
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				dst := filepath.Join(out, fmt.Sprintf("%s-%d", who, i))
				b, err := p.cli.Command(ctx, "tftp", "-m", "binary", "10.41.7.1", "-c", "get", "big.bin", dst).CombinedOutput()
				if fi, serr := os.Stat(dst); err != nil || serr != nil || fi.Size() != size {
					errs <- fmt.Errorf("%s client %d: %v: %s", who, i, err, b)
				}
				os.Remove(dst)
			}(i)
		}
		wg.Wait()
		secs := time.Since(start).Seconds()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return float64(clients*size) / (1 << 20) / secs
	}

	ours := func(singlePort bool) float64 {
		cfg := Defaults()
		cfg.Root, cfg.IPXEDir, cfg.SinglePort = root, "", singlePort
		var conn net.PacketConn
		if err := p.srv.Do(func() (err error) { conn, err = net.ListenPacket("udp4", "10.41.7.1:69"); return }); err != nil {
			t.Fatal(err)
		}
		s, err := New(cfg, Deps{Conn: conn})
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		// Run on a thread inside the namespace: per-transfer sockets open there.
		go func() { done <- p.srv.Do(func() error { return s.Run(sctx) }) }()
		defer func() { scancel(); <-done }()
		return fetch("imgctl")
	}
	theirs := func() float64 {
		cmd := p.srv.Command(ctx, "in.tftpd", "-L", "-a", "10.41.7.1:69", "-u", "root", "-s", root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }() // the process we started, by PID
		time.Sleep(200 * time.Millisecond)                // bind; the clients retry anyway
		return fetch("tftpd")
	}
	var single, multi, hpa []float64
	for r := 0; r < rounds; r++ {
		multi = append(multi, ours(false))
		single = append(single, ours(true))
		hpa = append(hpa, theirs())
		t.Logf("round %d: imgctl %.1f MiB/s (single-port %.1f); in.tftpd %.1f MiB/s", r, multi[r], single[r], hpa[r])
	}
	figures := map[string]any{
		"clients": clients, "file_bytes": size, "rounds": rounds, "client": "tftp-hpa (512-byte blocks)",
		"imgctl_mib_per_s": median(multi), "imgctl_single_port_mib_per_s": median(single), "tftpd_hpa_mib_per_s": median(hpa),
		"throughput_ratio_vs_tftpd_hpa":             median(multi) / median(hpa),
		"single_port_throughput_ratio_vs_tftpd_hpa": median(single) / median(hpa),
	}
	t.Logf("figures: %v", figures)
	if err := benchresult.Write("tftp.json", figures); err != nil {
		t.Fatal(err)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
