package httpboot

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchHTTP serves a 1 GiB root image to 32 concurrent curl clients over
// loopback, from this server and from a plain net/http.FileServer over the
// same file, and reports throughput and server CPU per GiB as ratios.
// The clients are child processes, so RUSAGE_SELF is the server's CPU.
func TestBenchHTTP(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") != "1" {
		t.Skip("benchmark: set IMGCTL_BENCH=1")
	}
	testenv.RequireCommands(t, "curl")
	const clients = 32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	f := newFixture(t, Config{})
	e, _ := writeSet(t, f.store, "big", "sha256:"+strings.Repeat("3", 64), 1<<30)
	rootFile := filepath.Join(e.Dir, e.Manifest.Artifacts["rootfs"].File)

	serve := func(h http.Handler) (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		return "http://" + ln.Addr().String(), func() { srv.Close() }
	}
	run := func(url string) (secs, cpuSecs float64) {
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := exec.CommandContext(ctx, "curl", "-sS", "-f", "-o", "/dev/null", url).CombinedOutput()
				if err != nil {
					errs <- fmt.Errorf("curl: %v: %s", err, out)
				}
			}()
		}
		wg.Wait()
		secs = time.Since(start).Seconds()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		cpu := func(r syscall.Rusage) float64 {
			return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
		}
		return secs, cpu(ru1) - cpu(ru0)
	}

	base, stop := serve(f.srv.Handler())
	defer stop()
	ours := base + "/artifacts/big/" + strings.Repeat("3", 64) + "/" + e.Manifest.Artifacts["rootfs"].File
	// First request verifies the set (hashes 1 GiB); keep that out of the timing.
	if out, err := exec.CommandContext(ctx, "curl", "-sS", "-f", "-r", "0-0", "-o", "/dev/null", ours).CombinedOutput(); err != nil {
		t.Fatalf("warm-up: %v %s", err, out)
	}
	fsBase, stopFS := serve(http.FileServer(http.Dir(filepath.Dir(rootFile))))
	defer stopFS()
	plain := fsBase + "/" + filepath.Base(rootFile)

	gib := float64(clients) // each client fetches 1 GiB
	fsSecs, fsCPU := run(plain)
	ourSecs, ourCPU := run(ours)
	figures := map[string]any{
		"clients":                         clients,
		"file_gib":                        1,
		"imgctl_gib_per_s":                gib / ourSecs,
		"fileserver_gib_per_s":            gib / fsSecs,
		"imgctl_cpu_s_per_gib":            ourCPU / gib,
		"fileserver_cpu_s_per_gib":        fsCPU / gib,
		"throughput_ratio_vs_fileserver":  (gib / ourSecs) / (gib / fsSecs),
		"cpu_per_gib_ratio_vs_fileserver": (ourCPU / gib) / (fsCPU / gib),
	}
	t.Logf("http bench: %v", figures)
	if err := benchresult.Write("http.json", figures); err != nil {
		t.Fatal(err)
	}
}
