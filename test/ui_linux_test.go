package test

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
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/internal/browsertest"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestUIBootStormInBrowser watches a boot storm in the dashboard of the real
// `imgctl serve`: 200 simulated nodes go through the real protocol
// endpoints (DHCP exchange as iPXE → dhcp, iPXE script → ipxe, kernel
// download → kernel, phone-home rootfs and booted with the node token)
// while headless Chromium shows /ui. One node's row must follow every phase
// live (read from the DOM, no reload), the page must come back by itself
// after serve restarts, the hostlist filter must narrow the table, and
// without a token the page and its event stream get 401.
func TestUIBootStormInBrowser(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "curl")
	const nodes, watched = 200, "load007"
	const admin = "ui-admin-token-0123456789"
	bctx := browsertest.New(t)
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	state, macs, p, logPath, logf := loadSite(t, ctx, bin, "ui", "02:42:17", "10.47")
	srv, cli, sIf, cIf := p.Server, p.Client, p.ServerIf, p.ClientIf
	var serve *exec.Cmd
	start := func() {
		serve = srv.Command(context.Background(), bin, "--state", state, "serve", "--interface", sIf, "--address", "10.47.0.1",
			"--set", "http.admin_token="+admin)
		serve.Stdout, serve.Stderr = logf, logf
		if err := serve.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, ctx, cli, "http://10.47.0.1:8080/metrics")
	}
	stop := func() {
		if serve != nil && serve.Process != nil {
			serve.Process.Signal(syscall.SIGTERM)
			serve.Wait()
		}
	}
	start()
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log (tail):\n%s", tailString(string(b), 3000))
		}
	})
	// The browser runs outside the namespaces: a loopback proxy whose
	// upstream connections are made inside the client namespace.
	base := nsProxy(t, cli, "10.47.0.1:8080")

	t.Run("no token: page and stream are refused", func(t *testing.T) {
		for _, path := range []string{"/ui", "/ui/events", "/ui/api/nodes"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %s, want 401", path, resp.Status)
			}
		}
	})

	page := &pageDriver{t: t, ctx: bctx}
	page.do("sign in", chromedp.Navigate(base+"/ui"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), admin), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#viewport")))
	page.wait("the 200 nodes", `window.__ui && __ui.loads > 0 && document.getElementById('count').textContent === '200 of 200 nodes'`)
	page.wait("scrolled to the last node", `(() => { const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight;
		return !!document.querySelector('[data-node="load200"]'); })()`)
	page.wait("back at the top", `(() => { document.getElementById('viewport').scrollTop = 0; return !!document.querySelector('[data-node="load001"]'); })()`)
	page.eval(`window.__sameDocument = 'yes'`)
	rowIs := func(st string) {
		t.Helper()
		page.wait(watched+" "+st, fmt.Sprintf(`document.querySelector('[data-node=%q] .c-state')?.textContent === %q`, watched, st))
	}

	// The storm, phase by phase for all nodes at once.
	gen := dhcptest.New(t, cli, cIf)
	gen.Wait = 2 * time.Second
	var fails nodeFailures
	fail := fails.add
	check := func(phase string) {
		t.Helper()
		if n, first := fails.first(); n > 0 {
			t.Fatalf("%s: %d failures, first %v", phase, n, first)
		}
	}
	leases, scripts := dhcpStorm(ctx, gen, macs, 50, &fails)
	check("dhcp")
	rowIs("dhcp")
	addLeases(t, ctx, cli, cIf, leases)

	clients := make([]*http.Client, nodes)
	for i := range clients {
		clients[i] = nsClient(cli, leases[i])
	}
	get := func(i int, u string) ([]byte, error) { return fetchOK(ctx, clients[i], u) }
	kernels := make([]string, nodes)
	tokens := make([]string, nodes)
	tokenRE := regexp.MustCompile(`imgctl\.token=(\S+)`)
	parallel(nodes, 50, func(i int) {
		b, err := get(i, strings.ReplaceAll(scripts[i], "${net0/mac}", url.QueryEscape(macs[i])))
		if err != nil {
			fail(i, err)
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[0] == "kernel" && f[1] == "--name" {
				kernels[i] = f[3]
			}
		}
		m := tokenRE.FindStringSubmatch(string(b))
		if kernels[i] == "" || m == nil {
			fail(i, fmt.Errorf("script without kernel URL or token:\n%s", b))
			return
		}
		tokens[i] = m[1]
	})
	check("ipxe")
	rowIs("ipxe")
	parallel(nodes, 50, func(i int) {
		if _, err := get(i, kernels[i]); err != nil {
			fail(i, err)
		}
	})
	check("kernel")
	rowIs("kernel")
	phoneHome := func(i int, st string) {
		body := fmt.Sprintf(`{"state":%q,"detail":"ui test","image_digest":"sha256:%s"}`, st, strings.Repeat("ab", 32))
		u := fmt.Sprintf("http://10.47.0.1:8080/api/v1/nodes/load%03d/state?token=%s", i+1, url.QueryEscape(tokens[i]))
		req, _ := http.NewRequestWithContext(ctx, "POST", u, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := clients[i].Do(req)
		if err != nil {
			fail(i, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			fail(i, fmt.Errorf("phone-home %s: %s", st, resp.Status))
		}
	}
	for _, st := range []string{"rootfs", "booted"} {
		parallel(nodes, 50, func(i int) { phoneHome(i, st) })
		check(st)
		rowIs(st)
	}
	page.wait("every node booted", `document.getElementById('summary').textContent === 'booted 200'`)

	t.Run("metrics tell the storm's story", func(t *testing.T) {
		// One refused request: load005's resource with load006's token.
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://10.47.0.1:8080/nodes/load005/overlay.cpio.zst?token="+url.QueryEscape(tokens[5]), nil)
		if resp, err := clients[4].Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign token: %v %v, want 403", resp, err)
		} else {
			resp.Body.Close()
		}
		m := scrape(t, base+"/metrics")
		// Every figure the Grafana dashboard charts is exported.
		dash, err := os.ReadFile(filepath.Join(repoRoot(), "contrib", "grafana", "imgctl-boot.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`imgctl_[a-z_]+`).FindAllString(string(dash), -1) {
			_, ok := m["# HELP "+name]
			for _, suffix := range []string{"_bucket", "_count", "_sum"} { // a histogram's series
				_, h := m["# HELP "+strings.TrimSuffix(name, suffix)]
				ok = ok || (strings.HasSuffix(name, suffix) && h)
			}
			if !ok {
				t.Errorf("the dashboard charts %s; /metrics has no such figure", name)
			}
		}
		for _, c := range []struct {
			series string
			min    float64
			max    float64
		}{
			{`imgctl_dhcp_replies_total{type="offer"}`, nodes, 2 * nodes},
			{`imgctl_dhcp_replies_total{type="ack"}`, nodes, 2 * nodes},
			{`imgctl_dhcp_drops_total{reason="unknown_mac"}`, 0, 0},
			{`imgctl_http_artifact_bytes_total{kind="kernel"}`, nodes * 256 << 10, nodes * 256 << 10},
			{`imgctl_boot_duration_seconds_count`, nodes, nodes},
			{`imgctl_boot_phase_duration_seconds_count{phase="rootfs"}`, nodes, nodes},
			{`imgctl_boot_phase_duration_seconds_count{phase="dhcp"}`, nodes, nodes},
			{`imgctl_node_state_count{state="booted"}`, nodes, nodes},
			{`imgctl_nodes_stale`, 0, 0},
			{`imgctl_http_token_refusals_total{node="load005"}`, 1, 1},
		} {
			v, ok := m[c.series]
			if !ok || v < c.min || v > c.max {
				t.Errorf("%s = %v (present %v), want %v..%v", c.series, v, ok, c.min, c.max)
			}
		}
	})
	page.wait("the storm view", `(() => { document.querySelector('[data-tab=storm]').click();
		const s = document.getElementById('storm-stats').textContent; return s.includes('booted 200') && s.includes('p95'); })()`)
	browsertest.Screenshot(t, bctx, "storm")
	page.eval(`document.querySelector('[data-tab=nodes]').click()`)

	t.Run("serve restarts: the page reconnects and resyncs", func(t *testing.T) {
		stop()
		page.wait("disconnected", `document.getElementById('conn').textContent === 'reconnecting'`)
		start()
		page.wait("reconnected", `document.getElementById('conn').textContent === 'live' && __ui.hellos >= 2`)
		mac, _ := net.ParseMAC(macs[6]) // load007 reboots
		if _, err := gen.DORA(ctx, mac, dhcpv4.WithUserClass("iPXE", false)); err != nil {
			fail(6, err)
		}
		check("dhcp after restart")
		rowIs("dhcp")
	})

	t.Run("hostlist filter narrows the table", func(t *testing.T) {
		page.do("type the filter", chromedp.SendKeys(chromedp.CSS("#f-hostlist"), "load[001-010,150]"))
		page.wait("11 rows", `document.getElementById('count').textContent === '11 of 11 nodes' &&
			document.querySelectorAll('#rows .row').length === 11 && !!document.querySelector('[data-node="load150"]') &&
			!document.querySelector('[data-node="load011"]')`)
	})
	page.wait("never reloaded", `window.__sameDocument === 'yes'`)
	browsertest.Screenshot(t, bctx, "nodes")
}

// pageDriver runs bounded chromedp steps and says where the page was when
// one fails.
type pageDriver struct {
	t   *testing.T
	ctx context.Context
}

func (p *pageDriver) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v (%s)", what, err, p.state())
	}
}

// wait waits until expr is truthy in the page (evaluated every frame).
func (p *pageDriver) wait(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 40*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(35*time.Second))); err != nil {
		p.t.Fatalf("%s: %v (%s)", what, err, p.state())
	}
}

func (p *pageDriver) eval(expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](expr+`; undefined`)); err != nil && !strings.Contains(err.Error(), "undefined") {
		p.t.Fatalf("%s: %v", expr, err)
	}
}

func (p *pageDriver) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' ui=' + JSON.stringify(window.__ui) + ' count=' +
		(document.getElementById('count') || {}).textContent + ' conn=' + (document.getElementById('conn') || {}).textContent +
		' error=' + (document.getElementById('filter-error') || {}).textContent`))
	if err != nil {
		return "page state unknown: " + err.Error()
	}
	return s
}

// nsProxy forwards loopback connections to target, dialled inside ns (a
// socket keeps the namespace of the thread that made it), and returns its
// base URL. Everything closes on t.Cleanup.
func nsProxy(t *testing.T, ns *netns.NS, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var up net.Conn
				err := ns.Do(func() (err error) {
					up, err = net.DialTimeout("tcp", target, 5*time.Second)
					return err
				})
				if err != nil {
					c.Close()
					return
				}
				track(c, true)
				track(up, true)
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				c.Close()
				<-done
				up.Close()
				track(c, false)
				track(up, false)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// addLeases gives the client side every leased address, so each simulated
// node speaks from its own.
func addLeases(t *testing.T, ctx context.Context, ns *netns.NS, dev string, leases []string) {
	t.Helper()
	var batch bytes.Buffer
	for _, ip := range leases {
		fmt.Fprintf(&batch, "addr add %s/16 dev %s\n", ip, dev)
	}
	add := exec.CommandContext(ctx, "ip", "-n", ns.Name, "-batch", "-")
	add.Stdin = &batch
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
}

// scrape reads a Prometheus text page into series → value; "# HELP NAME"
// keys say which figures are there.
func scrape(t *testing.T, u string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(l, "# HELP "); ok {
			m["# HELP "+strings.Fields(name)[0]] = 1
		}
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		var v float64
		if _, err := fmt.Sscan(l[i+1:], &v); err == nil {
			m[l[:i]] = v
		}
	}
	return m
}
