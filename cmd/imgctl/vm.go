package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/hostlist"
	"github.com/imgctl/imgctl/internal/vm"
)

// vmBootFlags are `vm boot`'s options.
type vmBootFlags struct {
	image, mode string
	console     bool
	timeout     time.Duration
	memory      int
	bridgeAddr  string
	serveConfig string
	serveSets   []string
}

func addVMCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Boot inventory nodes as QEMU virtual machines through the boot service",
	}
	cmd.AddCommand(newVMBootCmd(g))
	root.AddCommand(cmd)
}

func newVMBootCmd(g *globals) *cobra.Command {
	f := &vmBootFlags{}
	c := &cobra.Command{
		Use:   "boot NODES",
		Short: "Network-boot nodes in QEMU through a private 'imgctl serve' and wait until they report booted",
		Long: `Boots each named node (a hostlist) as a QEMU machine with the node's MAC, on a
bridge in a private network namespace where 'imgctl serve' runs on this state
directory and inventory. The node goes the real way: DHCP, iPXE script over
HTTP, kernel, initramfs and its overlay, root image verified and mounted (live)
or NFS root (nfs), then phones home. The boot ends when the node reports
'booted' (success), when it powers off or the timeout passes (failure).

The serial console goes to <state>/vm/<node>/console.log (and to the terminal
with --console), the boot service's log to serve.log beside it. KVM is used
when /dev/kvm is there; otherwise QEMU emulates (TCG, a few minutes a boot).
Nothing is left behind: the machine, the service and the namespace are
removed when the boot ends or on Ctrl-C.`,
		Example: `  imgctl vm boot nid001
  imgctl vm boot 'nid[001-003]' --image compute-base --mode nfs -o json
  imgctl vm boot nid001 --console --timeout 10m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVMBoot(cmd.Context(), g, f, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.image, "image", "", "boot this image instead of the node's (the inventory is not changed)")
	fl.StringVar(&f.mode, "mode", "", "boot mode instead of the node's: live or nfs")
	fl.BoolVar(&f.console, "console", false, "copy the serial console to the terminal")
	fl.DurationVar(&f.timeout, "timeout", 6*time.Minute, "give up on a node after this long")
	fl.IntVar(&f.memory, "memory", 1024, "guest memory in MiB")
	fl.StringVar(&f.bridgeAddr, "bridge-address", "", "boot service address on the node's bridge, CIDR (default: .1 of the node's subnet, .254 if the node is .1)")
	fl.StringVar(&f.serveConfig, "serve-config", "", "serve configuration file for the private boot service")
	fl.StringArrayVar(&f.serveSets, "serve-set", nil, "serve setting KEY=VALUE for the private boot service (repeatable)")
	return c
}

// vmPhase is one step of a boot as seen on the console or by the boot service.
type vmPhase struct {
	Source string  `json:"source"` // console | server
	Phase  string  `json:"phase"`
	At     float64 `json:"at_s"` // seconds after QEMU started
}

// vmBootResult is what `vm boot` reports per node.
type vmBootResult struct {
	Node       string    `json:"node"`
	Image      string    `json:"image"`
	Mode       string    `json:"mode"`
	Booted     bool      `json:"booted"`
	Seconds    float64   `json:"seconds"`
	Phases     []vmPhase `json:"phases"`
	Digest     string    `json:"image_digest,omitempty"`
	RootMount  string    `json:"root_mount,omitempty"`
	Hostname   string    `json:"hostname,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Failures   []string  `json:"failures,omitempty"` // console lines that mean trouble
	Error      string    `json:"error,omitempty"`
	ConsoleLog string    `json:"console_log"`
	ServeLog   string    `json:"serve_log"`
}

func runVMBoot(ctx context.Context, g *globals, f *vmBootFlags, list string) error {
	if f.mode != "" && f.mode != string(inventory.ModeLive) && f.mode != string(inventory.ModeNFS) {
		return &usageError{msg: fmt.Sprintf("--mode %q: want live or nfs", f.mode)}
	}
	p, err := g.printer()
	if err != nil {
		return err
	}
	names, err := hostlist.Expand(list)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("vm boot: %w", err)
	}
	var results []vmBootResult
	var failed []string
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		r, err := bootOneVM(ctx, g, f, exe, name)
		if err != nil {
			r.Error = err.Error()
			failed = append(failed, name)
		}
		results = append(results, r)
	}
	if err := p.Value(results, func(w io.Writer) error { return printVMResults(w, results) }); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vm boot: interrupted: %w", err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("vm boot: %d of %d nodes did not boot: %s", len(failed), len(names), hostlist.Compress(failed))
	}
	return nil
}

func bootOneVM(ctx context.Context, g *globals, f *vmBootFlags, exe, name string) (vmBootResult, error) {
	r := vmBootResult{Node: name}
	inv, err := inventory.Load(g.inventoryPath())
	if err != nil {
		return r, err
	}
	raw, ok := inv.Raw(name)
	if !ok {
		return r, fmt.Errorf("node %s is not in the inventory %s", name, g.inventoryPath())
	}
	if f.image != "" {
		raw.Image = f.image
	}
	if f.mode != "" {
		raw.Mode = inventory.BootMode(f.mode)
	}
	if err := inv.Put(raw); err != nil {
		return r, err
	}
	n, _ := inv.Node(name)
	r.Image, r.Mode = n.Image, string(n.Mode)
	if r.Mode == "" {
		r.Mode = string(inventory.ModeLive)
	}
	if len(n.MACs) == 0 || n.IP == "" {
		return r, fmt.Errorf("node %s needs a MAC and an IP to boot as a VM (imgctl node set %s --mac … --ip …)", name, name)
	}
	if n.Image == "" {
		return r, fmt.Errorf("node %s has no image (imgctl node set %s --image NAME, or --image here)", name, name)
	}
	if _, err := images.NewStore(g.stateDir).Current(n.Image); err != nil {
		return r, fmt.Errorf("node %s: image %s has no boot artifacts in %s (imgctl artifacts build %s): %w", name, n.Image, g.stateDir, n.Image, err)
	}
	bridge := f.bridgeAddr
	if bridge == "" {
		if bridge, err = defaultBridgeAddr(n.IP, n.Netmask); err != nil {
			return r, fmt.Errorf("node %s: %w", name, err)
		}
	}
	serverIP, _, _ := strings.Cut(bridge, "/")

	dir := filepath.Join(g.stateDir, "vm", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, fmt.Errorf("vm boot: %w", err)
	}
	// The private service reads a copy of the inventory, so --image and --mode
	// never touch the real one.
	invCopy := filepath.Join(dir, "nodes.yaml")
	if err := inv.Save(invCopy); err != nil {
		return r, err
	}
	r.ConsoleLog, r.ServeLog = filepath.Join(dir, "console.log"), filepath.Join(dir, "serve.log")
	os.Remove(r.ConsoleLog) // QEMU appends to a chardev file
	serveLog, err := os.Create(r.ServeLog)
	if err != nil {
		return r, fmt.Errorf("vm boot: %w", err)
	}
	defer serveLog.Close()

	argv := []string{exe, "--state", g.stateDir, "--inventory", invCopy, "serve",
		"--interface", "br0", "--address", serverIP, "--nfs=" + fmt.Sprint(r.Mode == string(inventory.ModeNFS)),
		// The bridge is ours alone: an advertisement saves iPXE its ~13 s IPv6 wait.
		"--ra"}
	if f.serveConfig != "" {
		argv = append(argv, "--config", f.serveConfig)
	}
	for _, s := range f.serveSets {
		argv = append(argv, "--set", s)
	}

	progress := io.Discard
	if !g.quiet && !f.console {
		progress = g.stderr
	}
	var console io.Writer
	if f.console {
		console = g.stderr
	}
	fmt.Fprintf(progress, "%s: booting %s (%s) in QEMU, console log %s\n", name, r.Image, r.Mode, r.ConsoleLog)
	start := time.Now()
	watch := &stateWatch{stateDir: g.stateDir, node: name, since: start, progress: progress, start: start}
	res, bootErr := vm.Boot(ctx, vm.Config{
		Machine:    vm.Machine{MAC: n.MACs[0], SerialLog: r.ConsoleLog, MemoryMiB: f.memory, KVM: vm.HaveKVM()},
		BridgeAddr: bridge,
		Serve:      vm.ServeProcess(argv, serveLog),
		Booted:     watch.booted,
		Console:    console,
		OnPhase: func(p vm.PhaseTime) {
			fmt.Fprintf(progress, "%s: %6.1fs  console  %s\n", name, p.At.Seconds(), p.Phase)
		},
		Timeout: f.timeout,
		Log:     vmLogger(g),
	})
	r.Seconds = time.Since(start).Seconds()
	if res != nil {
		r.Booted, r.Failures = res.Booted, res.Failures
		for _, p := range res.Phases {
			r.Phases = append(r.Phases, vmPhase{Source: "console", Phase: p.Phase, At: p.At.Seconds()})
		}
		if res.Booted {
			r.Seconds = res.BootedAt.Seconds()
		}
	}
	// The service has stopped and flushed: its record is final.
	watch.poll()
	r.Phases = append(r.Phases, watch.phases...)
	sortPhases(r.Phases)
	if st, ok := watch.last(); ok {
		r.Digest, r.RootMount, r.Hostname, r.Reason = st.ImageDigest, st.RootMount, st.Hostname, st.Reason
	}
	if bootErr != nil {
		if r.Reason != "" {
			bootErr = fmt.Errorf("%w (node reported: %s)", bootErr, r.Reason)
		}
		return r, fmt.Errorf("node %s: %w", name, bootErr)
	}
	return r, nil
}

// vmLogger is vm.Boot's logger: its phase lines duplicate the progress
// lines, so it speaks only with --verbose.
func vmLogger(g *globals) *slog.Logger {
	if g.verbose {
		return g.logger()
	}
	return nil
}

// stateWatch follows one node's record in the boot service's state file.
type stateWatch struct {
	stateDir, node string
	since, start   time.Time
	progress       io.Writer
	seen           map[string]bool
	phases         []vmPhase
	final          *nodestate.Node
}

// poll reads the state file and reports the node's new phases of this boot.
func (w *stateWatch) poll() {
	st, err := nodestate.Open(w.stateDir, 0, nil)
	if err != nil {
		return // mid-write files are replaced atomically; a read error is transient
	}
	n, ok := st.Get(w.node)
	if !ok {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	var fresh []vmPhase
	for phase, at := range n.Phases {
		if at.Before(w.since) || w.seen[phase] {
			continue
		}
		w.seen[phase] = true
		fresh = append(fresh, vmPhase{Source: "server", Phase: phase, At: at.Sub(w.start).Seconds()})
	}
	sortPhases(fresh)
	for _, p := range fresh {
		fmt.Fprintf(w.progress, "%s: %6.1fs  server   %s\n", w.node, p.At, p.Phase)
	}
	w.phases = append(w.phases, fresh...)
	if !n.Updated.Before(w.since) {
		w.final = &n
	}
}

// booted is vm.Config.Booted: the node phoned home `booted` during this boot.
// A `failed` report is not final (the node retries, then powers off).
func (w *stateWatch) booted(context.Context) (bool, error) {
	w.poll()
	return w.final != nil && w.final.State == nodestate.Booted, nil
}

func (w *stateWatch) last() (nodestate.Node, bool) {
	if w.final == nil {
		return nodestate.Node{}, false
	}
	return *w.final, true
}

func sortPhases(p []vmPhase) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].At < p[j-1].At; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// defaultBridgeAddr picks the boot service's address in the node's subnet:
// host .1, or .254 when the node itself is .1.
func defaultBridgeAddr(ip, netmask string) (string, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return "", fmt.Errorf("ip %q: not an IPv4 address", ip)
	}
	bits := 24
	if netmask != "" {
		if bits, err = prefixLen(netmask); err != nil {
			return "", err
		}
	}
	if bits > 30 {
		return "", fmt.Errorf("netmask /%d leaves no room for a boot server beside the node; give --bridge-address", bits)
	}
	network := toUint(netip.PrefixFrom(addr, bits).Masked().Addr())
	server := network + 1
	if server == toUint(addr) {
		server = network | ^uint32(0)>>bits - 1 // broadcast - 1
	}
	return fmt.Sprintf("%s/%d", fromUint(server), bits), nil
}

// prefixLen reads a netmask given dotted (255.255.255.0) or as /24 or 24.
func prefixLen(mask string) (int, error) {
	m := strings.TrimPrefix(mask, "/")
	var bits int
	if _, err := fmt.Sscanf(m, "%d", &bits); err == nil && !strings.Contains(m, ".") {
		if bits < 0 || bits > 32 {
			return 0, fmt.Errorf("netmask %q: prefix out of range", mask)
		}
		return bits, nil
	}
	a, err := netip.ParseAddr(m)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("netmask %q: want dotted or /prefix", mask)
	}
	v := toUint(a)
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %q: not contiguous", mask)
	}
	return ones, nil
}

func toUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func printVMResults(w io.Writer, results []vmBootResult) error {
	for _, r := range results {
		status := "booted"
		if !r.Booted {
			status = "NOT booted"
		}
		fmt.Fprintf(w, "%s: %s %s (%s) in %.1fs\n", r.Node, status, r.Image, r.Mode, r.Seconds)
		if r.Digest != "" {
			fmt.Fprintf(w, "  image digest  %s\n", r.Digest)
		}
		if r.RootMount != "" {
			fmt.Fprintf(w, "  root mount    %s\n", r.RootMount)
		}
		if r.Hostname != "" {
			fmt.Fprintf(w, "  hostname      %s\n", r.Hostname)
		}
		if r.Reason != "" {
			fmt.Fprintf(w, "  reason        %s\n", r.Reason)
		}
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  console       %s\n", f)
		}
		var parts []string
		for _, p := range r.Phases {
			parts = append(parts, fmt.Sprintf("%s %.1fs", p.Phase, p.At))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "  phases        %s\n", strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "  console log   %s\n  serve log     %s\n", r.ConsoleLog, r.ServeLog)
	}
	return nil
}
