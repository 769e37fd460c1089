package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
	"github.com/imgctl/imgctl/internal/vm"
)

// bootResult is the part of `imgctl vm boot -o json` the tests read.
type bootResult struct {
	Node        string   `json:"node"`
	Booted      bool     `json:"booted"`
	Accel       string   `json:"accel"`
	AccelReason string   `json:"accel_reason"`
	Seconds     float64  `json:"seconds"`
	Digest      string   `json:"image_digest"`
	RootMount   string   `json:"root_mount"`
	Hostname    string   `json:"hostname"`
	Reason      string   `json:"reason"`
	Error       string   `json:"error"`
	Failures    []string `json:"failures"`
	ConsoleLog  string   `json:"console_log"`
	ServeLog    string   `json:"serve_log"`
	Phases      []struct {
		Source string  `json:"source"`
		Phase  string  `json:"phase"`
		At     float64 `json:"at_s"`
	} `json:"phases"`

	Timeline *nodestate.Timeline `json:"timeline"`
}

// bootSlots bounds concurrent QEMU guests: each emulated CPU takes a core.
var bootSlots = make(chan struct{}, 2)

// TestBootVM network-boots QEMU guests through the real `imgctl serve` from
// the lean boot-tiny image: a live root and an NFS root must reach `booted`
// with the inventory hostname; a root image corrupted on the server must
// never be booted; a boot service restarted mid-boot must not strand a node.
func TestBootVM(t *testing.T) {
	requireVM(t, "mmdebstrap", "mksquashfs", "ssh-keygen")
	bin := imgctl(t)
	var set *images.Entry
	t.Run("fixture", func(t *testing.T) { set = bootArtifacts(t) })
	if set == nil {
		t.Fatal("no bootable artifact set")
	}
	pubKey := e2eKey(t)

	// Each case has its own state directory, MAC and subnet, so they run side
	// by side; bootSlots keeps two guests at a time.
	t.Run("boots", func(t *testing.T) {
		t.Run("live", func(t *testing.T) {
			t.Parallel()
			b := newBootNode(t, bin, set, "live01", "52:54:00:51:00:11", "10.51.0.11", "live", pubKey)
			res, err := b.vmBoot(t, 6*time.Minute)
			if err != nil {
				t.Fatalf("vm boot: %v\n%s", err, b.tails(t))
			}
			b.assertBooted(t, res, set)
			if !strings.Contains(res.RootMount, "overlay") || !strings.Contains(res.RootMount, "lower: /dev/loop") || !strings.Contains(res.RootMount, " squashfs ") {
				t.Errorf("root mount %q: want an overlay over the squashfs at /run/rootfsbase", res.RootMount)
			}
		})
		t.Run("nfs", func(t *testing.T) {
			t.Parallel()
			testenv.RequireCommands(t, "ganesha.nfsd")
			b := newBootNode(t, bin, set, "nfs01", "52:54:00:52:00:11", "10.52.0.11", "nfs", pubKey)
			res, err := b.vmBoot(t, 7*time.Minute)
			if err != nil {
				t.Fatalf("vm boot: %v\n%s", err, b.tails(t))
			}
			b.assertBooted(t, res, set)
			if !strings.Contains(res.RootMount, "overlay") || !strings.Contains(res.RootMount, "lower: 10.52.0.1:") || !strings.Contains(res.RootMount, " nfs4 ") {
				t.Errorf("root mount %q: want an overlay over the NFS export from 10.52.0.1", res.RootMount)
			}
		})
		t.Run("restart", func(t *testing.T) {
			t.Parallel()
			b := newBootNode(t, bin, set, "rst01", "52:54:00:53:00:11", "10.53.0.11", "live", pubKey)
			b.restartBoot(t, set)
		})
	})
	t.Run("faults", func(t *testing.T) {
		t.Run("corrupt-on-server", func(t *testing.T) {
			t.Parallel()
			b := newBootNode(t, bin, set, "bad01", "52:54:00:54:00:11", "10.54.0.11", "live", pubKey)
			root := filepath.Join(b.setDir(set), set.Manifest.Artifacts[images.RootFS].File)
			flipByte(t, root, true)
			res, err := b.vmBoot(t, 4*time.Minute, "--serve-set", "http.retries=3", "--serve-set", "http.retry_pause=2s")
			if err == nil || res.Booted {
				t.Fatalf("a node booted from a corrupt image set: %+v", res)
			}
			if !strings.Contains(res.Reason, "failed verification") {
				t.Errorf("reason %q: want the server's verification failure", res.Reason)
			}
			c := b.console(t)
			if !strings.Contains(c, "download failed (attempt 1 of 3)") || !strings.Contains(c, "failed after 3 attempts") {
				t.Errorf("console does not show iPXE retrying then giving up\n%s", b.tails(t))
			}
			if strings.Contains(c, "Linux version") {
				t.Error("a kernel from the refused set started")
			}
		})
		t.Run("corrupt-after-verify", func(t *testing.T) {
			t.Parallel()
			b := newBootNode(t, bin, set, "bad02", "52:54:00:55:00:11", "10.55.0.11", "live", pubKey)
			b.corruptAfterVerifyBoot(t, set)
		})
	})
}

// e2eKey makes an SSH key pair for root's authorized_keys on test nodes and
// returns the public key file.
func e2eKey(t *testing.T) string {
	keyDir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@imgctl", "-f", filepath.Join(keyDir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return filepath.Join(keyDir, "id.pub")
}

// requireVM skips a test that boots QEMU guests where that cannot work:
// not root, no QEMU or ip, no iPXE ROM; extra names further commands.
func requireVM(t *testing.T, extra ...string) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, append([]string{"qemu-system-x86_64", "ip"}, extra...)...)
	if _, err := os.Stat(vm.DefaultROM); err != nil {
		t.Skipf("no iPXE ROM: %v", err)
	}
}

// bootArtifacts builds boot-tiny and its boot artifacts into the shared test
// state (cached across runs) and returns the set.
func bootArtifacts(t *testing.T) *images.Entry {
	return recipeArtifacts(t, "test/fixtures/layers/boot-tiny.yaml")
}

// recipeArtifacts builds a bootable test recipe and its boot artifacts into
// the shared test state (cached across runs) and returns the set.
func recipeArtifacts(t *testing.T, recipe string) *images.Entry {
	src := buildtest.Image(t, recipe)
	state := testenv.StateDir(t)
	testenv.Lock(t, "artifacts")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e, err := artifacts.Build(ctx, src, images.NewStore(state), artifacts.Options{StateDir: state, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// bootNode is one inventory node in a state directory of its own.
type bootNode struct {
	bin, state, name, mac, ip string
}

// newBootNode makes a state directory holding a copy of set (so a case may
// corrupt it) and an inventory with one node.
func newBootNode(t *testing.T, bin string, set *images.Entry, name, mac, ip, mode, pubKey string) *bootNode {
	t.Helper()
	b := &bootNode{bin: bin, state: t.TempDir(), name: name, mac: mac, ip: ip}
	dir := b.setDir(set)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", set.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy artifacts: %v: %s", err, out)
	}
	if err := os.Symlink(filepath.Base(dir), filepath.Join(filepath.Dir(dir), "current")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--state", b.state, "-q", "node", "add", name, "--mac", mac, "--ip", ip,
		"--image", set.Manifest.Name, "--mode", mode, "--ssh-key-file", pubKey).CombinedOutput(); err != nil {
		t.Fatalf("node add: %v: %s", err, out)
	}
	return b
}

func (b *bootNode) setDir(set *images.Entry) string {
	return filepath.Join(b.state, "artifacts", set.Manifest.Name, images.DigestHex(set.Manifest.ImageDigest))
}

// vmBoot runs `imgctl vm boot` for the node and decodes its JSON report.
func (b *bootNode) vmBoot(t *testing.T, timeout time.Duration, extra ...string) (bootResult, error) {
	t.Helper()
	bootSlots <- struct{}{}
	defer func() { <-bootSlots }()
	args := append([]string{"--state", b.state, "-o", "json", "vm", "boot", b.name, "--timeout", timeout.String()}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("imgctl vm boot %s: %.1fs, exit %v\n%s", b.name, time.Since(start).Seconds(), runErr, errb.String())
	var res []bootResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res) != 1 {
		t.Fatalf("vm boot output %q: %v", out.String(), err)
	}
	logPhases(t, res[0])
	t.Logf("%s: accel %s (%s)", b.name, res[0].Accel, res[0].AccelReason)
	if res[0].Accel == "" {
		t.Errorf("vm boot -o json does not say which accelerator it used")
	}
	if runErr == nil && !res[0].Booted {
		t.Errorf("exit 0 but booted=false")
	}
	if runErr != nil && res[0].Booted {
		t.Errorf("exit %v but booted=true", runErr)
	}
	return res[0], runErr
}

func logPhases(t *testing.T, r bootResult) {
	var parts []string
	for _, p := range r.Phases {
		parts = append(parts, fmt.Sprintf("%s/%s %.1fs", p.Source, p.Phase, p.At))
	}
	t.Logf("%s phases: %s", r.Node, strings.Join(parts, ", "))
}

// assertBooted checks what every good boot must show.
func (b *bootNode) assertBooted(t *testing.T, res bootResult, set *images.Entry) {
	t.Helper()
	if !res.Booted || res.Hostname != b.name || res.Digest != set.Manifest.ImageDigest {
		t.Errorf("report %+v: want booted, hostname %s, digest %s", res, b.name, set.Manifest.ImageDigest)
	}
	if len(res.Failures) > 0 {
		t.Errorf("console failure lines: %q", res.Failures)
	}
	server := map[string]bool{}
	for _, p := range res.Phases {
		if p.Source == "server" {
			server[p.Phase] = true
		}
	}
	// dhcp: our DHCP's lease; ipxe and kernel: our HTTP's script and kernel;
	// rootfs and booted: the node's own reports.
	for _, want := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.RootFS, nodestate.Booted} {
		if !server[string(want)] {
			t.Errorf("the boot service never saw phase %s (saw %v)", want, server)
		}
	}
	serveLog, _ := os.ReadFile(res.ServeLog)
	if !bytes.Contains(serveLog, []byte("msg=ack server=dhcp node="+b.name+" mac="+b.mac+" ip="+b.ip)) {
		t.Errorf("serve log has no DHCP ack for %s", b.mac)
	}
	c := b.console(t)
	for _, want := range []string{"imgctl: booting " + b.name, "Linux version", "imgctl: node overlay applied: hostname " + b.name + ", root authorized_keys: 1"} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// Multi-user is proven by the node's `booted` (its unit runs after
	// multi-user.target). systemd's own "Reached target" line is not
	// reliable: systemd stops printing status once serial-getty holds the
	// console, which some boots start first (seen on an NFS boot).
	if !strings.Contains(c, "Multi-User System") {
		t.Logf("console has no \"Multi-User System\" line (systemd status output suppressed)")
	}
}

func (b *bootNode) console(t *testing.T) string {
	data, _ := os.ReadFile(filepath.Join(b.state, "vm", b.name, "console.log"))
	return string(data)
}

// tails returns the last lines of the console and the service log.
func (b *bootNode) tails(t *testing.T) string {
	last := func(path string, n int) string {
		data, _ := os.ReadFile(path)
		lines := strings.Split(string(data), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		return strings.Join(lines, "\n")
	}
	dir := filepath.Join(b.state, "vm", b.name)
	return "--- console (tail):\n" + last(filepath.Join(dir, "console.log"), 40) + "\n--- serve log (tail):\n" + last(filepath.Join(dir, "serve.log"), 25)
}

// flipByte changes one byte in the middle of path. newFile replaces the file
// (a new inode, as a bad copy would); otherwise it is changed in place with
// size and mtime kept, a corruption that the server's cheap change check
// cannot see and only the node's own verification can.
func flipByte(t *testing.T, path string, newFile bool) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if newFile {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, st.Mode()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := st.Size() / 2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// waitState waits, through the store's change notifications, until the
// node's record has entered state since start.
func (b *bootNode) waitState(ctx context.Context, state nodestate.State, since time.Time) error {
	st, err := filestore.Open(ctx, filestore.Options{StateDir: b.state})
	if err != nil {
		return err
	}
	defer st.Close()
	changes := st.Watch(ctx)
	for {
		if n, err := st.State(ctx, b.name); err == nil && !n.Phases[state].Before(since) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s never reached %s: %w", b.name, state, ctx.Err())
		case <-changes:
		}
	}
}

// corruptAfterVerifyBoot corrupts the root image in place once the server
// has verified the set and handed out the kernel: the server keeps serving
// it, so the node's agent must reject it, report failed, retry, give up and
// power off without ever mounting it.
func (b *bootNode) corruptAfterVerifyBoot(t *testing.T, set *images.Entry) {
	root := filepath.Join(b.setDir(set), set.Manifest.Artifacts[images.RootFS].File)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.waitState(ctx, nodestate.Kernel, time.Now()); err != nil {
			t.Error(err)
			return
		}
		flipByte(t, root, false)
		t.Logf("root image corrupted in place after the kernel was served")
	}()
	res, err := b.vmBoot(t, 5*time.Minute)
	cancel()
	if err == nil || res.Booted {
		t.Fatalf("the node booted a corrupt root image: %+v", res)
	}
	if !strings.Contains(res.Reason, "attempt 3/3") || !strings.Contains(res.Reason, "sha256") {
		t.Errorf("reason %q: want the node's third rejection naming the sha256 mismatch", res.Reason)
	}
	c := b.console(t)
	for _, want := range []string{"imgctl: root image rejected (attempt 1/3)", "imgctl: root image rejected (attempt 3/3)", "imgctl: giving up"} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q\n%s", want, b.tails(t))
		}
	}
	if strings.Contains(c, "Multi-User System") {
		t.Error("the node reached multi-user")
	}
}

// restartBoot boots the node through vmboot.Boot with a boot service that is
// stopped (SIGTERM) once the node has its kernel and started again a few
// seconds later: the node's retries must carry it through to `booted`. It
// also hosts the OnBooted hook: the hook must see the node by name and IP
// while it still runs (boot-tiny has no sshd, so an SSH command must get
// "connection refused" from the node's own kernel; the SSH plumbing itself
// is tested against a local sshd in bootsvc/vmboot).
func (b *bootNode) restartBoot(t *testing.T, set *images.Entry) {
	bootSlots <- struct{}{}
	defer func() { <-bootSlots }()
	start := time.Now()
	restarts := 0
	serve := func(ctx context.Context, ns *netns.NS, argv []string, log io.Writer) error {
		first, stopFirst := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- vm.ServeProcess(argv, log)(first, ns) }()
		if err := b.waitState(ctx, nodestate.Kernel, start); err != nil {
			stopFirst()
			<-errc
			return err
		}
		stopFirst()
		if err := <-errc; err != nil {
			return fmt.Errorf("first service did not stop cleanly: %w", err)
		}
		restarts++
		t.Logf("boot service stopped at %.1fs (node had its kernel), restarting in 3s", time.Since(start).Seconds())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(3 * time.Second):
		}
		return vm.ServeProcess(argv, log)(ctx, ns)
	}
	hooked := false
	onBooted := func(ctx context.Context, n vmboot.BootedNode) error {
		hooked = true
		if n.Name != b.name || n.IP.String() != b.ip {
			return fmt.Errorf("hook got node %s at %s, want %s at %s", n.Name, n.IP, b.name, b.ip)
		}
		sshCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := n.Output(sshCtx, "cat /etc/hostname")
		if err == nil || !strings.Contains(err.Error(), "Connection refused") {
			return fmt.Errorf("ssh to a node without sshd: %v, want connection refused", err)
		}
		return nil
	}
	st, err := filestore.Open(context.Background(), filestore.Options{StateDir: b.state})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := vmboot.Boot(context.Background(), vmboot.Options{
		StateDir:  b.state,
		Nodes:     st,
		States:    st,
		HostKeys:  st,
		Exe:       b.bin,
		ServeSets: []string{"http.retry_pause=2s"},
		Serve:     serve,
		OnBooted:  onBooted,
		Timeout:   6 * time.Minute,
	}, b.name)
	t.Logf("%s: accel %s (%s)", b.name, res.Accel, res.AccelReason)
	if err != nil {
		t.Fatalf("boot across a service restart: %v\n%s", err, b.tails(t))
	}
	if restarts != 1 {
		t.Fatalf("service restarted %d times, want 1", restarts)
	}
	if !hooked {
		t.Error("OnBooted was not called")
	}
	if res.Accel == "" || res.Hostname != b.name || res.Digest != set.Manifest.ImageDigest {
		t.Errorf("result after restart: %+v", res)
	}
	n, _ := st.State(context.Background(), b.name)
	if n.State != nodestate.Booted || n.Hostname != b.name || n.ImageDigest != set.Manifest.ImageDigest {
		t.Errorf("record after restart: %+v", n)
	}
	t.Logf("booted across a service restart in %.1fs", res.Seconds)
}
