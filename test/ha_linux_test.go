package test

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/imgctl/imgctl/bootsvc/dhcp/dhcptest"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
)

// haServer is one `imgctl serve` of the pair.
type haServer struct {
	name, addr, state string
	ns                *netns.NS
	cmd               *exec.Cmd
	log               string
	done              chan struct{}
}

// TestTwoServersOnePostgreSQL runs two `imgctl serve` on one bridge, in two
// namespaces, on one PostgreSQL, each serving the boot-tiny image its site
// pulled from a registry. 500 unknown MACs ask both at once for
// discovery leases (no address twice); then 1,000 inventory nodes boot
// through both (lease, script, kernel, initramfs, overlay), and one server is
// killed (SIGKILL) half way: every node still gets everything, retrying the
// way iPXE does (a new DHCP exchange, then the script from whoever answered).
func TestTwoServersOnePostgreSQL(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "runuser")
	const nodes, unknown = 1000, 500
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)

	// The boot-tiny image, published to a registry and pulled by each
	// server's site: the same artifacts on both. One token secret, so that
	// a node's token is good on either.
	testenv.RequireCommands(t, "docker-registry")
	set := bootArtifacts(t)
	repo := startDockerRegistry(t) + "/ha"
	imgctlRun := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("imgctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	imgctlRun("--storage-root", testenv.Storage(t).GraphRoot, "--storage-runroot", testenv.Storage(t).RunRoot, "--state", testenv.StateDir(t),
		"-q", "publish", set.Manifest.Name, "--registry", repo, "--tag", "ha", "--tls-verify=false")
	stateA, stateB := t.TempDir(), t.TempDir()
	for _, state := range []string{stateA, stateB} {
		site := t.TempDir()
		imgctlRun("--storage-root", filepath.Join(site, "storage"), "--storage-runroot", filepath.Join(site, "run"), "--state", state,
			"-q", "pull", repo+"/"+set.Manifest.Name+":ha", "--tls-verify=false")
	}
	secret := filepath.Join(t.TempDir(), "token.secret")
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(secret, key, 0o600)

	macs, macFile := writeMACs(t, "02:49:01", nodes)
	if out, err := exec.Command(bin, "--store", db, "-q", "node", "add", "ha[0001-1000]", "--mac-file", macFile,
		"--ip", "10.49.[1-4].[1-250]", "--netmask", "255.255.0.0", "--image", set.Manifest.Name, "--mode", "live").CombinedOutput(); err != nil {
		t.Fatalf("node add: %v: %s", err, out)
	}

	// The boot network: a bridge in the clients' namespace, each server on
	// a veth into it.
	cli, err := netns.New(ctx, netns.UniqueName("haC"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if err := cli.Bridge(ctx, "br0", "10.49.0.100/16"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`tftp: {enabled: false}
http: {token_secret: %s}
dhcp:
  unknown: discovery
  discovery_lease: 10m
  subnets: [{network: 10.49.0.0/16, pool: 10.49.10.1-10.49.11.254}]
`, secret)), 0o644)
	var servers []*haServer
	for i, name := range []string{"A", "B"} {
		s := &haServer{name: name, addr: fmt.Sprintf("10.49.0.%d", i+1), state: []string{stateA, stateB}[i]}
		if s.ns, err = netns.New(ctx, netns.UniqueName("ha"+name)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.ns.Close() })
		brPort := "hab" + strings.ToLower(name)
		if err := netns.Veth(ctx, s.ns, "ha0", s.addr+"/16", cli, brPort, ""); err != nil {
			t.Fatal(err)
		}
		if err := cli.IP(ctx, "link", "set", brPort, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		// The nodes' addresses are reached through the clients' bridge
		// address, so that a server keeps one ARP entry instead of 1,000:
		// the kernel's neighbour table is shared by every namespace and
		// holds 1,024 entries by default (gc_thresh3).
		for net := 1; net <= 4; net++ {
			if err := s.ns.IP(ctx, "route", "add", fmt.Sprintf("10.49.%d.0/24", net), "via", "10.49.0.100"); err != nil {
				t.Fatal(err)
			}
		}
		s.log = filepath.Join(s.state, "serve.log")
		logf, _ := os.Create(s.log)
		t.Cleanup(func() { logf.Close() })
		s.cmd = s.ns.Command(context.Background(), bin, "--store", db, "--state", s.state, "serve", "--config", cfg,
			"--interface", "ha0", "--address", s.addr)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.done = make(chan struct{})
		go func() { s.cmd.Wait(); close(s.done) }()
		t.Cleanup(func() {
			s.cmd.Process.Signal(syscall.SIGTERM)
			<-s.done
			if t.Failed() {
				b, _ := os.ReadFile(s.log)
				t.Logf("serve %s log (tail):\n%s", s.name, tailString(string(b), 3000))
			}
		})
		servers = append(servers, s)
	}
	for _, s := range servers {
		waitListening(t, ctx, cli, "http://"+s.addr+":8080/metrics")
	}
	gen := dhcptest.New(t, cli, "br0")
	gen.Wait = 2 * time.Second

	// 1. Discovery pool: 500 unknown MACs at once, both servers answering.
	leased := make([]string, unknown)
	var failMu sync.Mutex
	var fails []string
	parallel(unknown, 100, func(i int) {
		mac, _ := net.ParseMAC(fmt.Sprintf("02:49:0f:00:%02x:%02x", i>>8, i&0xff))
		ack, err := gen.DORA(ctx, mac)
		if err != nil {
			failMu.Lock()
			fails = append(fails, fmt.Sprintf("%s: %v", mac, err))
			failMu.Unlock()
			return
		}
		leased[i] = ack.YourIPAddr.String()
	})
	if len(fails) > 0 {
		t.Fatalf("%d of %d discovery leases failed, first %v", len(fails), unknown, fails[:min(5, len(fails))])
	}
	owner := map[string]int{}
	for i, ip := range leased {
		if j, dup := owner[ip]; dup {
			t.Fatalf("%s leased to unknown MACs %d and %d", ip, j, i)
		}
		owner[ip] = i
	}
	t.Logf("discovery: %d MACs, %d distinct addresses from two servers", unknown, len(owner))

	// 2. 1,000 nodes boot; server A is killed when half of them are done.
	var done atomic.Int64
	var killOnce sync.Once
	served := map[string]int{}
	lastServer := make([]string, nodes)
	var servedMu sync.Mutex
	start := time.Now()
	parallel(nodes, 50, func(i int) {
		mac, _ := net.ParseMAC(macs[i])
		var last error
		for attempt := 0; attempt < 6; attempt++ {
			srv, err := bootOnce(ctx, gen, cli, mac, fmt.Sprintf("10.49.%d.%d", i/250+1, i%250+1))
			if err == nil {
				servedMu.Lock()
				served[srv]++
				lastServer[i] = srv
				servedMu.Unlock()
				if done.Add(1) == nodes/2 {
					killOnce.Do(func() {
						servers[0].cmd.Process.Signal(syscall.SIGKILL)
						t.Logf("server A killed after %d nodes, at %.1fs", nodes/2, time.Since(start).Seconds())
					})
				}
				return
			}
			last = err
		}
		failMu.Lock()
		fails = append(fails, fmt.Sprintf("ha%04d: %v", i+1, last))
		failMu.Unlock()
	})
	if len(fails) > 0 {
		t.Fatalf("%d of %d nodes failed to boot, first %v", len(fails), nodes, fails[:min(5, len(fails))])
	}
	<-servers[0].done
	t.Logf("%d nodes booted in %.1fs; served by %v", nodes, time.Since(start).Seconds(), served)
	if served[servers[0].addr] == 0 || served[servers[1].addr] == 0 {
		t.Errorf("one server served no node: %v", served)
	}

	// 3. The records: one per node, whichever server saw which phase. The
	// surviving server writes what it queued when it stops; the killed one
	// lost what it had queued (a few milliseconds of phase records).
	servers[1].cmd.Process.Signal(syscall.SIGTERM)
	<-servers[1].done
	out, err := exec.Command(bin, "--store", db, "-o", "json", "node", "ls", "ha[0001-1000]").Output()
	if err != nil {
		t.Fatalf("node ls: %v", err)
	}
	var list []struct {
		Name  string `json:"name"`
		State *struct {
			State string `json:"state"`
		} `json:"state"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("node ls -o json: %v\n%.500s", err, out)
	}
	if len(list) != nodes {
		t.Fatalf("node ls: %d nodes, want %d", len(list), nodes)
	}
	lostOnA := 0
	for i, n := range list {
		if n.State != nil && n.State.State == "kernel" {
			continue
		}
		if lastServer[i] != servers[0].addr {
			t.Errorf("%s, booted through the surviving server, is in state %+v, want kernel", n.Name, n.State)
		}
		lostOnA++
	}
	t.Logf("records: %d of %d in state kernel; %d boots through the killed server lost their last phases", nodes-lostOnA, nodes, lostOnA)
	if lostOnA > 50 { // more than the boots in flight when it died
		t.Errorf("%d nodes lost phase records with the killed server", lostOnA)
	}
}

// bootOnce is one try of a booting node: DHCP as iPXE, then the script from
// the server that answered and every download it names. It returns that
// server's address.
func bootOnce(ctx context.Context, gen *dhcptest.Loadgen, cli *netns.NS, mac net.HardwareAddr, want string) (string, error) {
	ack, err := gen.DORA(ctx, mac, dhcpv4.WithUserClass("iPXE", false))
	if err != nil {
		return "", err
	}
	if ip := ack.YourIPAddr.String(); ip != want {
		return "", fmt.Errorf("leased %s, want %s", ip, want)
	}
	srv := ack.ServerIdentifier().String()
	if err := cli.IP(ctx, "addr", "replace", want+"/16", "dev", "br0"); err != nil {
		return "", err
	}
	c := nsClient(cli, want)
	// get fetches u whole; the body is kept only when keep is set (the
	// script), the rest is counted (kernel and initramfs are tens of MiB).
	get := func(u string, keep bool) ([]byte, int64, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		resp, err := c.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("%s: %s", u, resp.Status)
		}
		if keep {
			b, err := io.ReadAll(resp.Body)
			return b, int64(len(b)), err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("%s: %d of %d bytes", u, n, resp.ContentLength)
		}
		return nil, n, err
	}
	script, _, err := get(strings.ReplaceAll(ack.BootFileNameOption(), "${net0/mac}", url.QueryEscape(mac.String())), true)
	if err != nil {
		return srv, err
	}
	var urls []string
	for _, l := range strings.Split(string(script), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && (f[0] == "kernel" || f[0] == "initrd") && f[1] == "--name" {
			urls = append(urls, f[3])
		}
	}
	if len(urls) != 3 {
		return srv, fmt.Errorf("script from %s downloads %q", srv, urls)
	}
	for _, u := range urls {
		if _, n, err := get(u, false); err != nil || n == 0 {
			return srv, fmt.Errorf("%s: %d bytes, %v", u, n, err)
		}
	}
	return srv, nil
}
