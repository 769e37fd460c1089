package httpboot

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
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

	// Ours runs as imgctl serve runs it (Server.Serve: its http.Server
	// settings and connection context), the baselines on a plain http.Server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopOurs := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(sctx, ln) }()
	defer func() { stopOurs(); <-served }()
	base := "http://" + ln.Addr().String()
	ours := base + "/artifacts/big/" + strings.Repeat("3", 64) + "/" + e.Manifest.Artifacts["rootfs"].File
	// First request verifies the set (hashes 1 GiB); keep that out of the timing.
	if out, err := exec.CommandContext(ctx, "curl", "-sS", "-f", "-r", "0-0", "-o", "/dev/null", ours).CombinedOutput(); err != nil {
		t.Fatalf("warm-up: %v %s", err, out)
	}
	fsBase, stopFS := serve(http.FileServer(http.Dir(filepath.Dir(rootFile))))
	defer stopFS()
	plain := fsBase + "/" + filepath.Base(rootFile)

	gib := float64(clients) // each client fetches 1 GiB
	// nginx, as a site would serve the file: sendfile on, a worker per core.
	// Its CPU is read from /proc for the master and its workers.
	ngx := startNginx(t, ctx, filepath.Dir(rootFile))
	ngxURL := ngx.url + "/" + filepath.Base(rootFile)

	// Three rounds, the servers interleaved, so a busy moment on the host
	// does not land on one server only; medians are reported.
	const rounds = 3
	var fsS, fsC, ourS, ourC, ngxS, ngxC []float64
	for round := 0; round < rounds; round++ {
		secs, cpu := run(plain)
		fsS, fsC = append(fsS, secs), append(fsC, cpu)
		secs, cpu = run(ours)
		ourS, ourC = append(ourS, secs), append(ourC, cpu)
		cpu0 := ngx.cpuSeconds(t)
		secs, _ = run(ngxURL)
		ngxS, ngxC = append(ngxS, secs), append(ngxC, ngx.cpuSeconds(t)-cpu0)
		t.Logf("round %d: fileserver %.2f s, imgctl %.2f s, nginx %.2f s", round, fsS[round], ourS[round], ngxS[round])
	}
	fsSecs, fsCPU, ourSecs, ourCPU, ngxSecs, ngxCPU := median(fsS), median(fsC), median(ourS), median(ourC), median(ngxS), median(ngxC)
	figures := map[string]any{
		"clients":                         clients,
		"file_gib":                        1,
		"rounds":                          rounds,
		"imgctl_gib_per_s":                gib / ourSecs,
		"fileserver_gib_per_s":            gib / fsSecs,
		"nginx_gib_per_s":                 gib / ngxSecs,
		"imgctl_cpu_s_per_gib":            ourCPU / gib,
		"fileserver_cpu_s_per_gib":        fsCPU / gib,
		"nginx_cpu_s_per_gib":             ngxCPU / gib,
		"throughput_ratio_vs_fileserver":  (gib / ourSecs) / (gib / fsSecs),
		"cpu_per_gib_ratio_vs_fileserver": (ourCPU / gib) / (fsCPU / gib),
		"throughput_ratio_vs_nginx":       (gib / ourSecs) / (gib / ngxSecs),
		"cpu_per_gib_ratio_vs_nginx":      (ourCPU / gib) / (ngxCPU / gib),
	}
	for k, v := range benchresult.Host() {
		figures[k] = v
	}
	t.Logf("http bench: %v", figures)
	if err := benchresult.Write("http.json", figures); err != nil {
		t.Fatal(err)
	}
}

// nginxServer is a private nginx serving one directory on loopback.
type nginxServer struct {
	url string
	pid int
}

func startNginx(t *testing.T, ctx context.Context, root string) *nginxServer {
	t.Helper()
	testenv.RequireCommands(t, "nginx")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nginx binds it next; nothing else on this host picks ports here
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server { listen %[2]s; root %[3]s; }
}
`, dir, addr, root)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "nginx", "-c", path, "-p", dir)
	out, _ := os.Create(filepath.Join(dir, "nginx.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGQUIT); <-exited }) // by PID: the master started here
	n := &nginxServer{url: "http://" + addr, pid: cmd.Process.Pid}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return n
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			o, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
			t.Fatalf("nginx exited: %s %s", o, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not listen within 30 s")
		}
	}
}

// cpuSeconds is the user+system CPU of the nginx master and its workers.
func (n *nginxServer) cpuSeconds(t *testing.T) float64 {
	t.Helper()
	tick := 100.0 // USER_HZ on Linux
	var total float64
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state ppid ... utime(14) stime(15).
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(e.Name())
		ppid, _ := strconv.Atoi(f[1])
		if pid != n.pid && ppid != n.pid {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / tick
	}
	return total
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
