package vm

import (
	"context"
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
