package httpboot

import (
	"bytes"
	"context"
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
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// peerNet is a server namespace and a client namespace joined by a veth on
// 10.43.0.0/16; the server listens on 10.43.0.1:8080.
type peerNet struct {
	srv, cli *netns.NS
	dial     chan dialReq
}

type dialReq struct {
	local string
	reply chan dialResult
}

type dialResult struct {
	c   net.Conn
	err error
}

func newPeerNet(t *testing.T, ctx context.Context, f *fixture, clientIPs []string) *peerNet {
	t.Helper()
	testenv.RequireRoot(t)
	pair := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "hb", ServerAddr: "10.43.0.1/16"})
	p := &peerNet{srv: pair.Server, cli: pair.Client, dial: make(chan dialReq)}
	for _, ip := range clientIPs {
		if err := p.cli.IP(ctx, "addr", "add", ip+"/16", "dev", pair.ClientIf); err != nil {
			t.Fatal(err)
		}
	}
	var ln net.Listener
	if err := p.srv.Do(func() (err error) { ln, err = net.Listen("tcp", "10.43.0.1:8080"); return }); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(sctx, ln) }()
	// Dialers: goroutines locked to threads inside the client namespace, so
	// sockets they make live there (a socket keeps its namespace for life).
	for i := 0; i < 8; i++ {
		go p.cli.Do(func() error {
			for {
				select {
				case <-sctx.Done():
					return nil
				case r := <-p.dial:
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.local)}, Timeout: 10 * time.Second}
					c, err := d.Dial("tcp", "10.43.0.1:8080")
					r.reply <- dialResult{c, err}
				}
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return p
}

// client returns an HTTP client whose connections come from local, in the client namespace.
func (p *peerNet) client(local string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 4,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			r := dialReq{local: local, reply: make(chan dialResult, 1)}
			select {
			case p.dial <- r:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			res := <-r.reply
			return res.c, res.err
		},
	}}
}

func (p *peerNet) curl(t *testing.T, ctx context.Context, local string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := p.cli.Command(ctx, append([]string{"curl", "-sS", "-f", "--max-time", "30", "--interface", local}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("curl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func TestRealPeers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "curl", "cpio")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newFixture(t, Config{PublicURL: "http://10.43.0.1:8080"})
	p := newPeerNet(t, ctx, f, []string{"10.43.0.11", "10.43.0.12", "10.43.0.99"})
	script, err := p.curl(t, ctx, "10.43.0.11", "http://10.43.0.1:8080/ipxe?mac=52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenRE.FindSubmatch(script)
	if tok == nil {
		t.Fatalf("no token in script:\n%s", script)
	}
	root := regexpFind(t, script, `imgctl\.root=(\S+)`)
	part, err := p.curl(t, ctx, "10.43.0.11", "-r", "4096-135167", root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part, f.root[4096:135168]) {
		t.Errorf("range of the root image: got %d bytes, differ from the file", len(part))
	}
	ovl := "http://10.43.0.1:8080/nodes/nid001/overlay.cpio.zst?token=" + url.QueryEscape(string(tok[1]))
	archive := filepath.Join(t.TempDir(), "overlay.cpio.zst")
	if _, err := p.curl(t, ctx, "10.43.0.11", "-o", archive, ovl); err != nil {
		t.Fatal(err)
	}
	list, err := exec.CommandContext(ctx, "sh", "-c", "zstd -dc "+archive+" | cpio -itv").CombinedOutput()
	if err != nil || !strings.Contains(string(list), "imgctl-overlay/etc/hostname") || !strings.Contains(string(list), "imgctl-overlay/etc/secret") ||
		!strings.Contains(string(list), "-rw-------   1 root     root") || !strings.Contains(string(list), "imgctl-overlay/etc/ssh/ssh_host_ed25519_key") {
		t.Errorf("cpio -itv: %v\n%s", err, list)
	}
	t.Logf("overlay archive:\n%s", list)
	refusals := []struct{ name, local, url string }{
		{"another node's address", "10.43.0.12", ovl},
		{"bad token", "10.43.0.11", "http://10.43.0.1:8080/nodes/nid001/overlay.cpio.zst?token=t1.nottoken"},
		{"traversal", "10.43.0.11", "http://10.43.0.1:8080/artifacts/compute/" + strings.TrimPrefix(testDigest, "sha256:") + "/..%2F..%2Fhttpboot.secret"},
	}
	for _, tc := range refusals {
		before := len(f.logs.String())
		if out, err := p.curl(t, ctx, tc.local, tc.url); err == nil {
			t.Errorf("%s: served %d bytes", tc.name, len(out))
		}
		if len(f.logs.String()) == before {
			t.Errorf("%s: no log line", tc.name)
		}
	}
	unknown, err := p.curl(t, ctx, "10.43.0.99", "http://10.43.0.1:8080/ipxe?mac=52:54:00:99:99:99")
	if err != nil || !bytes.Contains(unknown, []byte("not in the inventory")) {
		t.Errorf("unknown mac: %v\n%s", err, unknown)
	}
	// Still serving after all that.
	if _, err := p.curl(t, ctx, "10.43.0.11", "http://10.43.0.1:8080/ipxe?mac=52:54:00:00:00:01"); err != nil {
		t.Errorf("server no longer serving: %v", err)
	}
}

func regexpFind(t *testing.T, b []byte, re string) string {
	t.Helper()
	m := regexpMust(re).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, b)
	}
	return string(m[1])
}

// TestLoad200Nodes boots 200 simulated nodes at once over HTTP: each with its
// own address fetches its script, then kernel, initrd and overlay together.
func TestLoad200Nodes(t *testing.T) {
	testenv.RequireRoot(t)
	const nodes = 200
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	f := newFixture(t, Config{PublicURL: "http://10.43.0.1:8080"})
	var ips []string
	macs := map[string]string{}
	var load []inventory.Node
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("load%03d", i)
		ip := fmt.Sprintf("10.43.%d.%d", 10+i/200, 10+i%200)
		mac := fmt.Sprintf("52:54:01:00:%02x:%02x", i/256, i%256)
		load = append(load, inventory.Node{Name: name, MACs: []string{mac}, IP: ip,
			Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeLive, Vars: map[string]string{"secret": "s-" + name}}})
		macs[name] = mac
		ips = append(ips, ip)
	}
	putNodes(t, f.nodes, load...)
	p := newPeerNet(t, ctx, f, ips)
	var mu sync.Mutex
	var lat []time.Duration
	byEP := map[string][]time.Duration{}
	var fails []string
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < nodes; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("load%03d", i)
			c := p.client(ips[i])
			get := func(u string) ([]byte, error) {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
				resp, err := c.Do(req)
				if err != nil {
					return nil, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("%s: %s", u, resp.Status)
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				ep := endpoint(req.URL.Path)
				byEP[ep] = append(byEP[ep], d)
				mu.Unlock()
				return b, err
			}
			fail := func(err error) { mu.Lock(); fails = append(fails, name+": "+err.Error()); mu.Unlock() }
			script, err := get(fmt.Sprintf("http://10.43.0.1:8080/ipxe?mac=%s", url.QueryEscape(macs[name])))
			if err != nil {
				fail(err)
				return
			}
			var urls []string
			for _, l := range strings.Split(string(script), "\n") {
				if fs := strings.Fields(l); len(fs) >= 4 && (fs[0] == "kernel" || fs[0] == "initrd") && fs[1] == "--name" {
					urls = append(urls, fs[3])
				}
			}
			if len(urls) != 3 || !strings.Contains(urls[2], "/nodes/"+name+"/") {
				fail(fmt.Errorf("script has downloads %q", urls))
				return
			}
			var inner sync.WaitGroup
			for _, u := range urls {
				inner.Add(1)
				go func(u string) {
					defer inner.Done()
					b, err := get(u)
					if err == nil && len(b) == 0 {
						err = fmt.Errorf("%s: empty", u)
					}
					if err != nil {
						fail(err)
					}
				}(u)
			}
			inner.Wait()
		}(i)
	}
	wg.Wait()
	wall := time.Since(start)
	if len(fails) > 0 {
		t.Errorf("%d failures, first: %v", len(fails), fails[:min(5, len(fails))])
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	figures := map[string]any{
		"nodes": nodes, "requests": len(lat), "failures": len(fails), "wall_seconds": wall.Seconds(),
		"p50_ms": pct(0.50).Seconds() * 1000, "p99_ms": pct(0.99).Seconds() * 1000, "max_ms": lat[len(lat)-1].Seconds() * 1000,
	}
	for ep, l := range byEP {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		figures["p99_ms_"+ep] = l[int(0.99*float64(len(l)-1))].Seconds() * 1000
	}
	t.Logf("load: %v", figures)
	if c := f.states.Counts()["kernel"]; c != nodes {
		t.Errorf("%d nodes recorded in state kernel, want %d", c, nodes)
	}
	if os.Getenv("IMGCTL_BENCH") == "1" { // figures only under make bench
		if err := benchresult.Write("load.json", figures); err != nil {
			t.Fatal(err)
		}
	}
}
