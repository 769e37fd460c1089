package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestLoad200NodesThroughServe is a mass reboot against the real `imgctl
// serve`: 200 simulated nodes in a client namespace each get their lease by a
// full DHCP exchange (as iPXE, so the lease carries the script URL), then
// fetch their iPXE script, kernel, initramfs and overlay all at once from
// their leased address. Every step must succeed; timings are reported (and
// written to bench/results/load_serve.json under make bench).
func TestLoad200NodesThroughServe(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip")
	const nodes = 200
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state, macs, p, logPath, logf := loadSite(t, ctx, bin, "ld", "02:42:01", "10.42")
	srv, cli, sIf, cIf := p.Server, p.Client, p.ServerIf, p.ClientIf
	serve := srv.Command(context.Background(), bin, "--state", state, "serve", "--interface", sIf, "--address", "10.42.0.1", "--tftp=false")
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log (tail):\n%s", tailString(string(b), 3000))
		}
	})
	waitListening(t, ctx, cli, "http://10.42.0.1:8080/metrics")

	// Phase 1: DHCP, 200 full exchanges, 50 in flight.
	gen := dhcptest.New(t, cli, cIf)
	gen.Wait = 2 * time.Second
	var fails nodeFailures
	fail := fails.add
	var mu sync.Mutex
	start := time.Now()
	leases, scripts := dhcpStorm(ctx, gen, macs, 50, &fails)
	dhcpWall := time.Since(start)
	if n, first := fails.first(); n > 0 {
		t.Fatalf("%d DHCP failures, first %v", n, first)
	}
	for i, ip := range leases {
		if want := fmt.Sprintf("10.42.1.%d", i+1); ip != want || !strings.Contains(scripts[i], "/ipxe?mac=") {
			t.Fatalf("load%03d leased %s with boot file %q, want %s and the script URL", i+1, ip, scripts[i], want)
		}
	}

	// Phase 2: every node takes its leased address and fetches everything.
	var batch bytes.Buffer
	for _, ip := range leases {
		fmt.Fprintf(&batch, "addr add %s/16 dev %s\n", ip, cIf)
	}
	add := exec.CommandContext(ctx, "ip", "-n", cli.Name, "-batch", "-")
	add.Stdin = &batch
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	var lat []time.Duration
	start = time.Now()
	parallel(nodes, nodes, func(i int) {
		c := nsClient(cli, leases[i])
		get := func(u string) ([]byte, error) {
			t0 := time.Now()
			b, err := fetchOK(ctx, c, u)
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			return b, err
		}
		script, err := get(strings.ReplaceAll(scripts[i], "${net0/mac}", url.QueryEscape(macs[i])))
		if err != nil {
			fail(i, err)
			return
		}
		var urls []string
		for _, l := range strings.Split(string(script), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && (f[0] == "kernel" || f[0] == "initrd") && f[1] == "--name" {
				urls = append(urls, f[3])
			}
		}
		if len(urls) != 3 {
			fail(i, fmt.Errorf("script downloads %q", urls))
			return
		}
		var wg sync.WaitGroup
		for _, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if b, err := get(u); err != nil || len(b) == 0 {
					fail(i, fmt.Errorf("%s: %d bytes, %v", u, len(b), err))
				}
			}()
		}
		wg.Wait()
	})
	httpWall := time.Since(start)
	if n, first := fails.first(); n > 0 {
		t.Fatalf("%d fetch failures, first %v", n, first)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))].Seconds() * 1000 }
	figures := map[string]any{"nodes": nodes, "dhcp_exchanges": 2 * nodes, "dhcp_wall_s": dhcpWall.Seconds(),
		"http_requests": len(lat), "http_wall_s": httpWall.Seconds(), "http_p50_ms": pct(0.5), "http_p99_ms": pct(0.99), "failures": 0}
	t.Logf("load through imgctl serve: %v", figures)

	// The service recorded every node: lease, script, kernel.
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	st, err := filestore.Open(ctx, filestore.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[nodestate.State]int{}
	for _, n := range list {
		counts[n.State]++
	}
	if c := counts[nodestate.Kernel]; c != nodes {
		t.Errorf("%d nodes in state kernel, want %d (%v)", c, nodes, counts)
	}
	if os.Getenv("IMGCTL_BENCH") != "" {
		if err := benchresult.Write("load_serve.json", figures); err != nil {
			t.Logf("figures not written: %v", err) // as before, not a test failure
		}
	}
}

// parallel runs fn(0..n-1) with at most w at once.
func parallel(n, w int, fn func(i int)) {
	sem := make(chan struct{}, w)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// nsClient is an HTTP client whose connections are made inside ns from
// local: a socket keeps the namespace of the thread that made it.
func nsClient(ns *netns.NS, local string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: false}, Timeout: 60 * time.Second}
}

// writeSmallSet installs a small valid artifact set (random kernel,
// initramfs and a 2 MiB root image in 1 MiB pieces) named name into state.
func writeSmallSet(t *testing.T, ctx context.Context, state, name string) {
	t.Helper()
	store := images.NewStore(state)
	digest := "sha256:" + strings.Repeat("ab", 32)
	dir, err := store.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, KernelVersion: "6.1.0-load",
		Cmdline: "console=ttyS0", Created: time.Now().UTC().Truncate(time.Second), Artifacts: map[string]images.Artifact{},
		Root: images.RootImage{Format: "squashfs", Compression: "zstd", PieceSize: 1 << 20}}
	for kind, f := range map[string]struct {
		file string
		size int
	}{images.Kernel: {"vmlinuz", 256 << 10}, images.Initramfs: {"initramfs.img", 512 << 10}, images.RootFS: {"rootfs.squashfs", 2 << 20}} {
		b := make([]byte, f.size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, f.file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		pieces, sum, err := images.HashPieces(ctx, bytes.NewReader(b), m.Root.PieceSize)
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts[kind] = images.Artifact{File: f.file, Size: int64(f.size), SHA256: sum}
		if kind == images.RootFS {
			m.Root.Pieces = pieces
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(dir); err != nil {
		t.Fatal(err)
	}
	if err := store.SetCurrent(name, digest); err != nil {
		t.Fatal(err)
	}
}

// writeMACs makes n MACs prefix:00:XX:YY and a --mac-file listing them.
func writeMACs(t *testing.T, prefix string, n int) (macs []string, file string) {
	t.Helper()
	macs = make([]string, n)
	for i := range macs {
		macs[i] = fmt.Sprintf("%s:00:%02x:%02x", prefix, i>>8, i&0xff)
	}
	file = filepath.Join(t.TempDir(), "macs.txt")
	if err := os.WriteFile(file, []byte(strings.Join(macs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return macs, file
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// loadSite makes what the 200-node tests share: a state directory with the
// small image and nodes load[001-200] (MACs from macPrefix, addresses in
// net.1.0/16), a server/client namespace pair on net.0.1 and net.0.2, and
// the serve log file (closed when t ends).
func loadSite(t *testing.T, ctx context.Context, bin, nsPrefix, macPrefix, net string) (state string, macs []string, p *nstest.Pair, logPath string, logf *os.File) {
	t.Helper()
	state = t.TempDir()
	writeSmallSet(t, ctx, state, "loadimg")
	macs, macFile := writeMACs(t, macPrefix, 200)
	if out, err := exec.Command(bin, "--state", state, "-q", "node", "add", "load[001-200]", "--mac-file", macFile,
		"--ip", net+".1.[1-200]", "--netmask", "255.255.0.0", "--image", "loadimg", "--mode", "live").CombinedOutput(); err != nil {
		t.Fatalf("node add: %v: %s", err, out)
	}
	p = nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: nsPrefix, ServerAddr: net + ".0.1/16", ClientAddr: net + ".0.2/16"})
	logPath = filepath.Join(state, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	return state, macs, p, logPath, logf
}

// nodeFailures collects the errors of nodes in a parallel phase.
type nodeFailures struct {
	mu   sync.Mutex
	list []string
}

func (f *nodeFailures) add(i int, err error) {
	f.mu.Lock()
	f.list = append(f.list, fmt.Sprintf("load%03d: %v", i+1, err))
	f.mu.Unlock()
}

// first returns how many failed and the first five.
func (f *nodeFailures) first() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.list), f.list[:min(5, len(f.list))]
}

// dhcpStorm does a full iPXE DHCP exchange for every MAC, inFlight at a
// time, and returns each node's leased address and boot file.
func dhcpStorm(ctx context.Context, gen *dhcptest.Loadgen, macs []string, inFlight int, fails *nodeFailures) (leases, scripts []string) {
	leases, scripts = make([]string, len(macs)), make([]string, len(macs))
	parallel(len(macs), inFlight, func(i int) {
		mac, _ := net.ParseMAC(macs[i])
		ack, err := gen.DORA(ctx, mac, dhcpv4.WithUserClass("iPXE", false))
		if err != nil {
			fails.add(i, err)
			return
		}
		leases[i], scripts[i] = ack.YourIPAddr.String(), ack.BootFileNameOption()
	})
	return leases, scripts
}

// fetchOK GETs u through c and returns the body, or an error for any status
// but 200.
func fetchOK(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", u, resp.Status)
	}
	return b, err
}
