package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
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
	accel       string
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
directory and inventory (its file store, whatever --store says). The node goes the real way: DHCP, iPXE script over
HTTP, kernel, initramfs and its overlay, root image verified and mounted (live)
or NFS root (nfs), then phones home. The boot ends when the node reports
'booted' (success), when it powers off or the timeout passes (failure).

The serial console goes to <state>/vm/<node>/console.log (and to the terminal
with --console), the boot service's log to serve.log and QEMU's own output to
qemu.log beside it. KVM is used when it works (/dev/kvm opens, the CPU has
vmx/svm, a VM can be created and a trial QEMU runs under it); otherwise QEMU
emulates (TCG, a few minutes a boot). The report says which and why.
Nothing is left behind: the machine, the service and the namespace are
removed when the boot ends or on Ctrl-C.`,
		Example: `  imgctl vm boot nid001
  imgctl vm boot 'nid[001-003]' --image compute-base --mode nfs -o json
  imgctl vm boot nid001 --console --timeout 10m --accel tcg`,
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
	fl.StringVar(&f.accel, "accel", "auto", "QEMU accelerator: auto (KVM when it really works), kvm or tcg")
	return c
}

func runVMBoot(ctx context.Context, g *globals, f *vmBootFlags, list string) error {
	if f.mode != "" && f.mode != string(inventory.ModeLive) && f.mode != string(inventory.ModeNFS) {
		return &usageError{msg: fmt.Sprintf("--mode %q: want live or nfs", f.mode)}
	}
	accel, err := accelFlag(f.accel)
	if err != nil {
		return err
	}
	p, err := g.printer()
	if err != nil {
		return err
	}
	names, err := hostlist.Expand(list)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	// The VM's private boot service runs on the state directory's files,
	// whatever --store says: read what it records from there.
	st, err := g.openStoreAt(ctx, "", false)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := vmboot.Options{
		StateDir:    g.stateDir,
		Nodes:       st,
		States:      st,
		HostKeys:    st,
		Image:       f.image,
		Mode:        inventory.BootMode(f.mode),
		MemoryMiB:   f.memory,
		Timeout:     f.timeout,
		BridgeAddr:  f.bridgeAddr,
		ServeConfig: f.serveConfig,
		ServeSets:   f.serveSets,
		Accel:       accel,
	}
	if !g.quiet && !f.console {
		opts.Progress = g.stderr
	}
	if f.console {
		opts.Console = g.stderr
	}
	if g.verbose { // vm's phase lines duplicate the progress lines
		opts.Log = g.logger()
	}
	results, bootErr := vmboot.BootAll(ctx, opts, names)
	if err := p.Value(results, func(w io.Writer) error { return printVMResults(w, results) }); err != nil {
		return err
	}
	return bootErr
}

// accelFlag turns --accel into vmboot's accelerator choice: auto probes
// once for all nodes.
func accelFlag(v string) (func(context.Context) vm.AccelChoice, error) {
	switch v {
	case "", "auto":
		return (&vm.Prober{}).Probe, nil
	case string(vm.AccelTCG), string(vm.AccelKVM):
		c := vm.AccelChoice{Accel: vm.Accel(v), Reason: "--accel " + v}
		return func(context.Context) vm.AccelChoice { return c }, nil
	}
	return nil, &usageError{msg: fmt.Sprintf("--accel %q: want auto, kvm or tcg", v)}
}

func printVMResults(w io.Writer, results []vmboot.Result) error {
	for _, r := range results {
		status := "booted"
		if !r.Booted {
			status = "NOT booted"
		}
		fmt.Fprintf(w, "%s: %s %s (%s) in %.1fs\n", r.Node, status, r.Image, r.Mode, r.Seconds)
		if r.Accel != "" {
			fmt.Fprintf(w, "  accel         %s\n", vm.AccelChoice{Accel: r.Accel, Reason: r.AccelReason})
		}
		if r.Digest != "" {
			fmt.Fprintf(w, "  image digest  %s\n", r.Digest)
		}
		if r.RootMount != "" {
			fmt.Fprintf(w, "  root mount    %s\n", r.RootMount)
		}
		if r.Hostname != "" {
			fmt.Fprintf(w, "  hostname      %s\n", r.Hostname)
		}
		if r.Timeline != nil {
			fmt.Fprintf(w, "  timeline      %s\n", r.Timeline)
		}
		if r.Reason != "" {
			fmt.Fprintf(w, "  reason        %s\n", r.Reason)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  error         %s\n", strings.ReplaceAll(r.Error, "\n", "\n                "))
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
		if r.ConsoleLog != "" {
			fmt.Fprintf(w, "  console log   %s\n  serve log     %s\n  qemu log      %s\n", r.ConsoleLog, r.ServeLog, r.QEMULog)
		}
	}
	return nil
}
