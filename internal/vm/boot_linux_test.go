package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBootFirmware starts a real QEMU on a tap in a fresh namespace with no
// boot service: iPXE must come up on the serial console, the boot must end at
// the timeout, and QEMU and the namespace must be gone afterwards.
func TestBootFirmware(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "qemu-system-x86_64", "ip")
	if _, err := os.Stat(DefaultROM); err != nil {
		t.Skipf("no iPXE ROM: %v", err)
	}
	log := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Boot(ctx, Config{
		Machine:    Machine{MAC: "52:54:00:50:00:01", SerialLog: log, MemoryMiB: 256},
		BridgeAddr: "10.50.0.1/24",
		Timeout:    12 * time.Second,
	})
	if err == nil {
		t.Fatal("boot without a boot service succeeded")
	}
	if !strings.Contains(err.Error(), "did not boot within") {
		t.Errorf("err = %v, want a timeout", err)
	}
	if res == nil || len(res.Phases) == 0 || res.Phases[0].Phase != PhaseFirmware {
		b, _ := os.ReadFile(log)
		t.Fatalf("phases %+v; console:\n%s", res, b)
	}
	t.Logf("iPXE on the console after %s", res.Phases[0].At.Round(100*time.Millisecond))
	if res.Booted {
		t.Error("result says booted")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), res.Namespace) {
		t.Errorf("namespace %s left behind", res.Namespace)
	}
	if out, _ := exec.Command("pgrep", "-f", "ifname=tap0.*"+"52:54:00:50:00:01").Output(); len(out) > 0 {
		t.Errorf("QEMU still running: pids %s", out)
	}
}

// TestBootQEMUExitsEarly runs the real QEMU with one bad argument added (and
// a name that does not exist): Boot must fail at once with QEMU's exit
// status and the last lines it wrote, and leave the log in the node's dir.
func TestBootQEMUExitsEarly(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "qemu-system-x86_64", "ip")
	if _, err := os.Stat(DefaultROM); err != nil {
		t.Skipf("no iPXE ROM: %v", err)
	}
	dir := t.TempDir()
	badArg := filepath.Join(dir, "qemu-bad-arg")
	if err := os.WriteFile(badArg, []byte("#!/bin/sh\nexec qemu-system-x86_64 \"$@\" -no-such-option\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		qemu string
		want []string
	}{
		{"bad argument", badArg, []string{"exit status 1", "-no-such-option: invalid option"}},
		{"no such binary", filepath.Join(dir, "no-qemu"), []string{"exit status 1", "no-qemu\" failed: No such file"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodeDir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			res, err := Boot(ctx, Config{
				Machine:    Machine{MAC: fmt.Sprintf("52:54:00:50:01:%02x", i), SerialLog: filepath.Join(nodeDir, "console.log"), MemoryMiB: 128},
				BridgeAddr: "10.50.1.1/24",
				QEMU:       tt.qemu,
				Timeout:    30 * time.Second,
			})
			if err == nil {
				t.Fatal("boot succeeded")
			}
			for _, w := range append(tt.want, "exited before the node booted") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("early exit took %s to notice", time.Since(start))
			}
			if res == nil || res.QEMULog != filepath.Join(nodeDir, "qemu.log") {
				t.Fatalf("result %+v: want the QEMU log beside the console log", res)
			}
			if b, _ := os.ReadFile(res.QEMULog); len(b) == 0 {
				t.Error("QEMU log is empty")
			}
		})
	}
}
