package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/vm"
)

// TestBenchBoot boots the lean test image once live and once from NFS
// through `imgctl vm boot` and writes every phase's time to
// bench/results/boot.json. The in-run baseline is the NFS boot: the live
// figure's ratio against it is the price of fetching, verifying and
// loop-mounting the root image instead of reading it over NFS. Runs only
// under `make bench` (IMGCTL_BENCH=1).
func TestBenchBoot(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	requireVM(t, "ssh-keygen", "ganesha.nfsd")
	bin := imgctl(t)
	set := bootArtifacts(t)
	keyDir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(keyDir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	accel := (&vm.Prober{}).Probe(context.Background())
	figures := map[string]any{"image": set.Manifest.Name, "kvm": accel.Accel == vm.AccelKVM, "accel": accel.String(),
		"date": time.Now().UTC().Format(time.RFC3339)}
	booted := map[string]float64{}
	for _, c := range []struct{ mode, mac, ip string }{
		{"live", "52:54:00:56:00:11", "10.56.0.11"},
		{"nfs", "52:54:00:57:00:11", "10.57.0.11"},
	} {
		b := newBootNode(t, bin, set, "bench-"+c.mode, c.mac, c.ip, c.mode, filepath.Join(keyDir, "id.pub"))
		res, err := b.vmBoot(t, 8*time.Minute)
		if err != nil {
			t.Fatalf("%s boot: %v\n%s", c.mode, err, b.tails(t))
		}
		phases := map[string]float64{}
		for _, p := range res.Phases {
			phases[p.Source+"/"+p.Phase] = p.At
		}
		figures[c.mode+"_phases_s"] = phases
		figures[c.mode+"_booted_s"] = res.Seconds
		booted[c.mode] = res.Seconds
	}
	figures["live_vs_nfs_booted_ratio"] = booted["live"] / booted["nfs"]
	if err := benchresult.Write("boot.json", figures); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot.json: %v", figures)
}
