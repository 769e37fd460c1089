package vm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Accel is the accelerator QEMU runs a guest under.
type Accel string

const (
	AccelTCG Accel = "tcg" // emulation: works everywhere, a few minutes a boot
	AccelKVM Accel = "kvm" // hardware virtualisation through /dev/kvm
)

// AccelChoice is a probe's verdict: the accelerator to use and why.
type AccelChoice struct {
	Accel  Accel  `json:"accel"`
	Reason string `json:"reason"`
}

// String reads as "tcg (kvm: /dev/kvm opens but the CPU has no vmx/svm flag)".
func (c AccelChoice) String() string {
	if c.Reason == "" {
		return string(c.Accel)
	}
	return fmt.Sprintf("%s (%s)", c.Accel, c.Reason)
}

// Prober finds out whether KVM works on this host. Opening /dev/kvm is not
// enough: a nested guest can have a /dev/kvm that opens and even creates VMs
// while the CPU lacks vmx/svm, and QEMU then dies on its first MSR write
// ("failed to set MSR 0x10a"). So KVM is chosen only when all hold: the
// device opens, /proc/cpuinfo has vmx or svm, KVM_CREATE_VM succeeds, and a
// short QEMU with -accel kvm keeps running.
//
// The zero value probes the real host. The first Probe's answer is kept, so
// a caller that keeps one Prober probes once per process; Probe is safe for
// concurrent use. The fields inject the inputs (tests, odd hosts) and must
// not change after the first Probe.
type Prober struct {
	CPUInfo string // file listing CPU flags; "" = /proc/cpuinfo
	Device  string // KVM device; "" = /dev/kvm
	// CreateVM runs KVM_CREATE_VM on the opened device; nil = the ioctl.
	CreateVM func(dev *os.File) error
	// QEMU is the emulator the trial start runs; "" = qemu-system-x86_64.
	QEMU string
	// Trial starts QEMU with -accel kvm and reports why it could not keep
	// running; nil = trialQEMU for TrialTime. Set it to a func returning nil
	// to skip the trial.
	Trial     func(ctx context.Context, qemu string) error
	TrialTime time.Duration // how long the trial QEMU must stay up; 0 = 1.5 s

	once   sync.Once
	result AccelChoice
}

// Probe returns the accelerator to use. It never fails: anything that rules
// KVM out gives TCG with the reason.
func (p *Prober) Probe(ctx context.Context) AccelChoice {
	p.once.Do(func() { p.result = p.probe(ctx) })
	return p.result
}

func (p *Prober) probe(ctx context.Context) AccelChoice {
	dev := p.Device
	if dev == "" {
		dev = "/dev/kvm"
	}
	tcg := func(format string, args ...any) AccelChoice {
		return AccelChoice{Accel: AccelTCG, Reason: "kvm: " + fmt.Sprintf(format, args...)}
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return tcg("%v", err)
	}
	defer f.Close()
	info := p.CPUInfo
	if info == "" {
		info = "/proc/cpuinfo"
	}
	flags, err := os.ReadFile(info)
	if err != nil {
		return tcg("%s opens but %v", dev, err)
	}
	if !hasVirtFlag(flags) {
		return tcg("%s opens but the CPU has no vmx/svm flag", dev)
	}
	create := p.CreateVM
	if create == nil {
		create = createVM
	}
	if err := create(f); err != nil {
		return tcg("KVM_CREATE_VM on %s: %v", dev, err)
	}
	qemu := p.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	trial := p.Trial
	if trial == nil {
		d := p.TrialTime
		if d == 0 {
			d = 1500 * time.Millisecond
		}
		trial = func(ctx context.Context, qemu string) error { return trialQEMU(ctx, qemu, d) }
	}
	if err := trial(ctx, qemu); err != nil {
		return tcg("%s works but %v", dev, err)
	}
	return AccelChoice{Accel: AccelKVM, Reason: "/dev/kvm works and a trial QEMU ran under it"}
}

// hasVirtFlag reports whether a cpuinfo "flags" line lists vmx or svm.
func hasVirtFlag(cpuinfo []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// trialQEMU starts a diskless, deviceless QEMU under KVM: it must still be
// running after d (SeaBIOS sits at "no bootable device"), or its exit status
// and last stderr lines are the error.
func trialQEMU(ctx context.Context, qemu string, d time.Duration) error {
	cmd := exec.Command(qemu, "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "32",
		"-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none", "-no-reboot")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("trial %s: %w", qemu, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-exited:
		if err == nil {
			err = fmt.Errorf("exited")
		}
		return fmt.Errorf("a trial %s -accel kvm stopped after start (%v): %s", qemu, err, lastLines(stderr.String(), 3, " | "))
	case <-ctx.Done():
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("trial %s: %w", qemu, ctx.Err())
	case <-t.C:
		cmd.Process.Kill()
		<-exited
		return nil
	}
}

// lastLines returns the last n non-empty lines of s joined by sep.
func lastLines(s string, n int, sep string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, sep)
}
