package vm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestProber(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const flagsVMX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse2 hypervisor\n\nprocessor\t: 1\nflags\t\t: fpu vmx\n"
	withVMX := write("cpuinfo-vmx", flagsVMX)
	withSVM := write("cpuinfo-svm", "flags\t\t: fpu svm lm\n")
	without := write("cpuinfo-none", "processor\t: 0\nflags\t\t: fpu vme msr hypervisor arch_capabilities\nbugs\t\t: vmx_like_but_not\n")
	// A regular file opens like the device but answers no ioctl.
	regular := write("kvm-regular-file", "")
	missing := filepath.Join(dir, "no-such-kvm")
	ok := func(*os.File) error { return nil }
	noTrial := func(context.Context, string) error { return nil }
	tests := []struct {
		name       string
		p          *Prober
		want       Accel
		wantReason string // substring
	}{
		{"all good", &Prober{CPUInfo: withVMX, Device: regular, CreateVM: ok, Trial: noTrial}, AccelKVM, "works"},
		{"svm", &Prober{CPUInfo: withSVM, Device: regular, CreateVM: ok, Trial: noTrial}, AccelKVM, "works"},
		{"no device", &Prober{CPUInfo: withVMX, Device: missing, CreateVM: ok, Trial: noTrial}, AccelTCG, "no such file"},
		{"no vmx/svm flag", &Prober{CPUInfo: without, Device: regular, CreateVM: ok, Trial: noTrial}, AccelTCG,
			"kvm: " + regular + " opens but the CPU has no vmx/svm flag"},
		{"empty cpuinfo", &Prober{CPUInfo: write("cpuinfo-empty", ""), Device: regular, CreateVM: ok, Trial: noTrial}, AccelTCG, "no vmx/svm flag"},
		{"cpuinfo unreadable", &Prober{CPUInfo: missing, Device: regular, CreateVM: ok, Trial: noTrial}, AccelTCG, "opens but"},
		{"regular file, real ioctl", &Prober{CPUInfo: withVMX, Device: regular, Trial: noTrial}, AccelTCG, "KVM_CREATE_VM on " + regular},
		{"failing ioctl", &Prober{CPUInfo: withVMX, Device: regular, CreateVM: func(*os.File) error { return syscall.EINVAL }, Trial: noTrial},
			AccelTCG, "KVM_CREATE_VM on " + regular + ": invalid argument"},
		{"trial QEMU dies", &Prober{CPUInfo: withVMX, Device: regular, CreateVM: ok,
			Trial: func(context.Context, string) error { return errors.New("failed to set MSR 0x10a") }}, AccelTCG, "MSR 0x10a"},
		{"trial QEMU missing", &Prober{CPUInfo: withVMX, Device: regular, CreateVM: ok, QEMU: filepath.Join(dir, "no-qemu")},
			AccelTCG, "no-qemu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.Probe(context.Background())
			if got.Accel != tt.want || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("Probe = %s; want %s with reason containing %q", got, tt.want, tt.wantReason)
			}
		})
	}
}

func TestProberCaches(t *testing.T) {
	var calls atomic.Int32
	p := &Prober{CPUInfo: "/nonexistent", Device: os.DevNull, CreateVM: func(*os.File) error { calls.Add(1); return nil }}
	first := p.Probe(context.Background())
	// A change of inputs after the first Probe is not seen: the answer is kept.
	p.CPUInfo = "/proc/cpuinfo"
	if got := p.Probe(context.Background()); got != first {
		t.Errorf("second Probe = %s, first %s", got, first)
	}
	if first.Accel != AccelTCG || calls.Load() != 0 {
		t.Errorf("Probe = %s, CreateVM calls %d; want tcg before the ioctl", first, calls.Load())
	}
}

func TestTrialQEMU(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dies := script("dies", `echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0" >&2
echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:2893: kvm_buf_set_msrs: Assertion failed." >&2
kill -ABRT $$`)
	stays := script("stays", "exec sleep 30")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := trialQEMU(ctx, dies, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "signal: aborted") || !strings.Contains(err.Error(), "kvm_buf_set_msrs") {
		t.Errorf("trial of a dying QEMU: %v; want its signal and stderr", err)
	}
	if err := trialQEMU(ctx, stays, 300*time.Millisecond); err != nil {
		t.Errorf("trial of a QEMU that keeps running: %v", err)
	}
}

func TestEarlyExit(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "qemu.log")
	var lines []string
	for i := range 20 {
		lines = append(lines, "line "+string(rune('a'+i)))
	}
	if err := os.WriteFile(logPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitErr := exec.Command("sh", "-c", "exit 3").Run()
	err := earlyExit("qemu-system-x86_64", waitErr, logPath, 1500*time.Millisecond).Error()
	for _, want := range []string{"exit status 3", "after 1.5s", logPath, "line t", "line m"} {
		if !strings.Contains(err, want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err, "line l") {
		t.Errorf("error %q quotes more than the last %d lines", err, tailLines)
	}
}
