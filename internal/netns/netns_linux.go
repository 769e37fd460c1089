// Package netns creates the network namespaces, veth pairs, bridges and taps
// imgctl uses to run a boot service and its nodes in isolation (imgctl vm boot,
// tests), and removes them again. It drives iproute2, which every target has.
package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace created by New. Close removes it.
type NS struct {
	Name string
}

var seq atomic.Int64 // only makes names unique within a process

// UniqueName returns a short name (≤ 15 bytes, fit for interfaces too) made of
// prefix, this process's PID and a sequence number.
func UniqueName(prefix string) string {
	n := fmt.Sprintf("%s%d%c", prefix, os.Getpid()%100000, 'a'+rune(seq.Add(1)%26))
	if len(n) > 15 {
		n = n[len(n)-15:]
	}
	return n
}

// New creates the namespace name with its loopback up.
func New(ctx context.Context, name string) (*NS, error) {
	if err := IP(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if err := ns.IP(ctx, "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Close deletes the namespace; interfaces inside it go with it.
func (ns *NS) Close() error {
	return IP(context.Background(), "netns", "delete", ns.Name)
}

// IP runs `ip args...` inside the namespace.
func (ns *NS) IP(ctx context.Context, args ...string) error {
	return IP(ctx, append([]string{"-n", ns.Name}, args...)...)
}

// Command returns a command that runs argv inside the namespace.
func (ns *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates
// stay in the namespace after Do returns, so servers can listen inside it and
// be served from any goroutine.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine instead of
		// returning to the pool while in the wrong namespace.
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + ns.Name)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// IP runs `ip args...` in the caller's namespace and returns its stderr on failure.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Veth creates a veth pair with one end (a) in ns a and the other (b) in ns b
// (nil = the caller's namespace), addresses in CIDR form ("" = none), both up.
func Veth(ctx context.Context, a *NS, aName, aAddr string, b *NS, bName, bAddr string) error {
	if err := IP(ctx, "link", "add", aName, "type", "veth", "peer", "name", bName); err != nil {
		return err
	}
	for _, end := range []struct {
		ns         *NS
		name, addr string
	}{{a, aName, aAddr}, {b, bName, bAddr}} {
		ipIn := func(args ...string) error { return IP(ctx, args...) }
		if end.ns != nil {
			if err := IP(ctx, "link", "set", end.name, "netns", end.ns.Name); err != nil {
				return err
			}
			ipIn = func(args ...string) error { return end.ns.IP(ctx, args...) }
		}
		if end.addr != "" {
			if err := ipIn("addr", "add", end.addr, "dev", end.name); err != nil {
				return err
			}
		}
		if err := ipIn("link", "set", end.name, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Bridge creates a bridge in ns with address addr (CIDR, "" = none), up.
func (ns *NS) Bridge(ctx context.Context, name, addr string) error {
	if err := ns.IP(ctx, "link", "add", name, "type", "bridge"); err != nil {
		return err
	}
	if addr != "" {
		if err := ns.IP(ctx, "addr", "add", addr, "dev", name); err != nil {
			return err
		}
	}
	return ns.IP(ctx, "link", "set", name, "up")
}

// Tap creates a tap device in ns enslaved to bridge, up. QEMU run inside ns
// (ns.Command) can open it with -netdev tap,ifname=name,script=no.
func (ns *NS) Tap(ctx context.Context, name, bridge string) error {
	if err := ns.IP(ctx, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return err
	}
	if err := ns.IP(ctx, "link", "set", name, "master", bridge); err != nil {
		return err
	}
	return ns.IP(ctx, "link", "set", name, "up")
}
