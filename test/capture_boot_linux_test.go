package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder/capture/capturetest"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestCaptureThenBoot is the golden-node workflow end to end with the CLI:
// hand-tune a running node (a file and a systemd unit that reports it),
// `imgctl capture --parent` it, `imgctl artifacts build` the capture, and
// boot a QEMU node from it: the node must reach `booted` and its console must
// show the hand-made change running.
func TestCaptureThenBoot(t *testing.T) {
	requireVM(t, "mksquashfs", "ssh-keygen")
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var set *images.Entry
	t.Run("fixture", func(t *testing.T) { set = bootArtifacts(t) }) // the parent's artifacts and initramfs cache
	if set == nil {
		t.Fatal("no bootable parent")
	}
	golden := capturetest.Start(t, ctx)

	// Hand-tuning: a config file and a unit that prints it at boot.
	r := golden.Root
	unit := "[Unit]\nDescription=Golden node report\nAfter=multi-user.target\n\n[Service]\nType=oneshot\n" +
		"ExecStart=/bin/sh -c 'echo \"golden-report: $(cat /etc/golden.conf)\" > /dev/console'\n\n[Install]\nWantedBy=multi-user.target\n"
	for path, content := range map[string]string{
		"etc/golden.conf":                          "tuned=yes-" + fmt.Sprint(os.Getpid()),
		"etc/systemd/system/golden-report.service": unit,
	} {
		if err := os.WriteFile(filepath.Join(r, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wants := filepath.Join(r, "etc/systemd/system/multi-user.target.wants")
	os.MkdirAll(wants, 0o755)
	if err := os.Symlink("/etc/systemd/system/golden-report.service", filepath.Join(wants, "golden-report.service")); err != nil {
		t.Fatal(err)
	}

	storage := []string{"--storage-root", testenv.Storage(t).GraphRoot, "--storage-runroot", testenv.Storage(t).RunRoot}
	name := fmt.Sprintf("golden-e2e-%d", os.Getpid()%100000)
	state := t.TempDir()
	// The parent's initramfs cache: the capture has the same kernel and
	// modules, so dracut need not run again.
	if out, err := exec.Command("cp", "-a", filepath.Join(testenv.StateDir(t), "cache"), state).CombinedOutput(); err != nil {
		t.Fatalf("copy initramfs cache: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(bin, append(storage, "-q", "rm", "imgctl/"+name)...).Run() })
	steps := [][]string{
		append(append([]string{}, storage...), "-o", "json", "capture", "root@"+golden.Addr, "--name", name, "--parent", "imgctl/boot-tiny",
			"--root", golden.Root, "-i", golden.Key, "--known-hosts", golden.KnownHosts),
		append(append([]string{}, storage...), "--state", state, "-q", "artifacts", "build", "imgctl/"+name+":latest"),
		{"--state", state, "-q", "node", "add", "gold01", "--mac", "52:54:00:58:00:11", "--ip", "10.58.0.11", "--image", name, "--mode", "live"},
	}
	for i, args := range steps {
		start := time.Now()
		verb := []string{"capture", "artifacts build", "node add"}[i]
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("imgctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("imgctl %s in %.1fs", verb, time.Since(start).Seconds())
		if i == 0 {
			var res struct {
				Added, Changed, Removed int
			}
			if err := json.Unmarshal(out, &res); err != nil || res.Added < 3 {
				t.Fatalf("capture report %s: %v (want the file, the unit and its link added)", out, err)
			}
			t.Logf("capture: %s", out)
		}
	}

	b := &bootNode{bin: bin, state: state, name: "gold01", mac: "52:54:00:58:00:11", ip: "10.58.0.11"}
	res, err := b.vmBoot(t, 6*time.Minute)
	if err != nil {
		t.Fatalf("boot of the captured image: %v\n%s", err, b.tails(t))
	}
	if !res.Booted || res.Hostname != "gold01" {
		t.Errorf("report %+v", res)
	}
	if c := b.console(t); !strings.Contains(c, "golden-report: tuned=yes-"+fmt.Sprint(os.Getpid())) {
		t.Errorf("the captured change did not run on the booted node\n%s", b.tails(t))
	}
}
