package vmboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/hostlist"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/vm"
)

// DefaultTimeout bounds one node's boot when Options.Timeout is 0.
const DefaultTimeout = 6 * time.Minute

// BootAll boots names one after another with opts and returns a result for
// each node it started (all of them unless ctx ended). One accelerator probe
// serves all nodes when opts.Accel is nil. The error names the nodes that
// did not boot; each result's Error says why.
func BootAll(ctx context.Context, opts Options, names []string) ([]Result, error) {
	if opts.Accel == nil {
		p := &vm.Prober{QEMU: opts.QEMU}
		opts.Accel = p.Probe
	}
	var results []Result
	var failed []string
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		r, err := Boot(ctx, opts, name)
		if err != nil {
			failed = append(failed, name)
		}
		results = append(results, r)
	}
	if err := ctx.Err(); err != nil {
		return results, fmt.Errorf("vm boot: interrupted: %w", err)
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("vm boot: %d of %d nodes did not boot: %s", len(failed), len(names), hostlist.Compress(failed))
	}
	return results, nil
}

// Boot boots one node and waits until it reports booted (then runs
// opts.OnBooted), powers off, or opts.Timeout passes. The machine, the
// private boot service and the namespace are gone when Boot returns. The
// result is filled as far as the boot got, also with an error; its Error
// field holds the error's text.
func Boot(ctx context.Context, opts Options, name string) (Result, error) {
	r, err := boot(ctx, opts, name)
	if err != nil {
		err = fmt.Errorf("node %s: %w", name, err)
		r.Error = err.Error()
	}
	return r, err
}

func boot(ctx context.Context, opts Options, name string) (Result, error) {
	r := Result{Node: name}
	if opts.Nodes == nil || opts.States == nil || opts.StateDir == "" {
		return r, errors.New("vm boot: Options need Nodes, States and StateDir")
	}
	if m := opts.Mode; m != "" && m != inventory.ModeLive && m != inventory.ModeNFS {
		return r, fmt.Errorf("mode %q: want live or nfs", m)
	}
	n, err := opts.Nodes.Node(ctx, name)
	if err != nil {
		return r, err
	}
	if opts.Image != "" {
		n.Image = opts.Image
	}
	if opts.Mode != "" {
		n.Mode = opts.Mode
	}
	if n.Mode == "" {
		n.Mode = inventory.ModeLive
	}
	r.Image, r.Mode = n.Image, string(n.Mode)
	if len(n.MACs) == 0 || n.IP == "" {
		return r, fmt.Errorf("needs a MAC and an IP to boot as a VM (imgctl node set %s --mac … --ip …)", name)
	}
	ip, err := netip.ParseAddr(n.IP)
	if err != nil {
		return r, fmt.Errorf("ip %q: %w", n.IP, err)
	}
	if n.Image == "" {
		return r, fmt.Errorf("no image (imgctl node set %s --image NAME, or --image here)", name)
	}
	if _, err := images.NewStore(opts.StateDir).Current(n.Image); err != nil {
		return r, fmt.Errorf("image %s has no boot artifacts in %s (imgctl artifacts build %s): %w", n.Image, opts.StateDir, n.Image, err)
	}
	bridge := opts.BridgeAddr
	if bridge == "" {
		if bridge, err = DefaultBridgeAddr(n.IP, n.Netmask); err != nil {
			return r, err
		}
	}
	serverIP, _, _ := strings.Cut(bridge, "/")
	exe := opts.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return r, fmt.Errorf("vm boot: %w", err)
		}
	}

	dir := filepath.Join(opts.StateDir, "vm", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, fmt.Errorf("vm boot: %w", err)
	}
	var sshID string
	if opts.OnBooted != nil {
		tmp, err := os.MkdirTemp(dir, "ssh-")
		if err != nil {
			return r, fmt.Errorf("vm boot: %w", err)
		}
		defer os.RemoveAll(tmp)
		id, pub, err := identity(opts.SSHIdentity, tmp, "vmboot@"+name)
		if err != nil {
			return r, err
		}
		sshID = id
		n.SSHKeys = append(append([]string(nil), n.SSHKeys...), pub)
	}
	accel := opts.Accel
	if accel == nil {
		p := &vm.Prober{QEMU: opts.QEMU}
		accel = p.Probe
	}
	choice := accel(ctx)
	r.Accel, r.AccelReason = choice.Accel, choice.Reason

	if choice.Accel != vm.AccelKVM {
		// Under TCG the guest runs with vm.TCGCmdline (see there why);
		// the inventory entry itself is not changed.
		n.Cmdline = strings.TrimSpace(n.Cmdline + " " + vm.TCGCmdline)
	}
	invPath := filepath.Join(dir, "nodes.yaml")
	if err := writeInventory(invPath, n); err != nil {
		return r, err
	}
	r.ConsoleLog, r.ServeLog = filepath.Join(dir, "console.log"), filepath.Join(dir, "serve.log")
	r.QEMULog = filepath.Join(dir, "qemu.log")
	os.Remove(r.ConsoleLog) // QEMU appends to a chardev file
	serveLog, err := os.Create(r.ServeLog)
	if err != nil {
		return r, fmt.Errorf("vm boot: %w", err)
	}
	defer serveLog.Close()
	argv := serveArgv(exe, opts, invPath, serverIP, n.Mode)
	serve := opts.Serve
	if serve == nil {
		serve = func(ctx context.Context, ns *netns.NS, argv []string, log io.Writer) error {
			return vm.ServeProcess(argv, log)(ctx, ns)
		}
	}

	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "%s: booting %s (%s) in QEMU, accel %s, console log %s\n", name, r.Image, r.Mode, choice, r.ConsoleLog)
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	watch := &stateWatch{states: opts.States, node: name, since: start, start: start, progress: progress}
	var onBooted func(ctx context.Context, ns *netns.NS) error
	if opts.OnBooted != nil {
		onBooted = func(ctx context.Context, ns *netns.NS) error {
			if opts.HostKeys == nil {
				return errors.New("vm boot: OnBooted needs HostKeys")
			}
			key, err := opts.HostKeys.PublicHostKey(ctx, name)
			if err != nil {
				return err
			}
			bn, err := newBootedNode(ns, name, ip, 0, key, sshID, filepath.Dir(sshID))
			if err != nil {
				return err
			}
			return opts.OnBooted(ctx, bn)
		}
	}
	res, bootErr := vm.Boot(ctx, vm.Config{
		Machine:    vm.Machine{MAC: n.MACs[0], SerialLog: r.ConsoleLog, MemoryMiB: opts.MemoryMiB, Accel: choice.Accel},
		BridgeAddr: bridge,
		Serve:      func(ctx context.Context, ns *netns.NS) error { return serve(ctx, ns, argv, serveLog) },
		Booted:     watch.booted,
		OnBooted:   onBooted,
		QEMU:       opts.QEMU,
		QEMULog:    r.QEMULog,
		Console:    opts.Console,
		OnPhase: func(p vm.PhaseTime) {
			fmt.Fprintf(progress, "%s: %6.1fs  console  %s\n", name, p.At.Seconds(), p.Phase)
		},
		Timeout: timeout,
		Log:     opts.Log,
	})
	r.Seconds = time.Since(start).Seconds()
	if res != nil {
		r.Booted, r.Failures = res.Booted, res.Failures
		for _, p := range res.Phases {
			r.Phases = append(r.Phases, Phase{Source: "console", Phase: p.Phase, At: p.At.Seconds()})
		}
		if res.Booted {
			r.Seconds = res.BootedAt.Seconds()
		}
	}
	// The service has stopped and flushed: its record is final.
	watch.poll(context.WithoutCancel(ctx))
	r.Phases = append(r.Phases, watch.phases...)
	sortPhases(r.Phases)
	if st, ok := watch.last(); ok {
		r.Digest, r.RootMount, r.Hostname, r.Reason = st.ImageDigest, st.RootMount, st.Hostname, st.Reason
		r.Timeline = st.Timeline
	}
	if bootErr != nil && r.Reason != "" {
		bootErr = fmt.Errorf("%w (node reported: %s)", bootErr, r.Reason)
	}
	return r, bootErr
}

// writeInventory writes the private service's inventory: n alone, already
// merged and with this boot's overrides, so the real inventory is never
// touched. n's groups are kept as empty groups (their settings are merged
// into n) so overlay templates still see the memberships.
func writeInventory(path string, n inventory.Node) error {
	inv := &inventory.Inventory{}
	for _, g := range n.Groups {
		if err := inv.PutGroup(g, inventory.Group{}); err != nil {
			return fmt.Errorf("private inventory: %w", err)
		}
	}
	if err := inv.Put(n); err != nil {
		return fmt.Errorf("private inventory: %w", err)
	}
	return inv.Save(path)
}

// serveArgv is the private `imgctl serve` on the VM's bridge.
func serveArgv(exe string, opts Options, invPath, serverIP string, mode inventory.BootMode) []string {
	argv := []string{exe, "--state", opts.StateDir, "--inventory", invPath, "serve",
		"--interface", "br0", "--address", serverIP, "--nfs=" + fmt.Sprint(mode == inventory.ModeNFS),
		// The bridge is ours alone: an advertisement saves iPXE its ~13 s IPv6 wait.
		"--ra"}
	if opts.ServeConfig != "" {
		argv = append(argv, "--config", opts.ServeConfig)
	}
	for _, s := range opts.ServeSets {
		argv = append(argv, "--set", s)
	}
	return argv
}
