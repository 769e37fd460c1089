package artifacts_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/testenv"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

// TestBuildBootableImage flattens the shared bootable fixture: kernel, a dracut
// initramfs carrying imgctl's module and the live/NFS/network modules, a
// squashfs root matching the image tree, and a manifest; then reuse and verify.
func TestBuildBootableImage(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mmdebstrap", "mksquashfs", "unsquashfs", "cpio")
	src := buildtest.Image(t, "test/fixtures/layers/boot-tiny.yaml")
	state := testenv.StateDir(t)
	store := images.NewStore(state)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	testenv.Lock(t, "artifacts")

	start := time.Now()
	e, err := artifacts.Build(ctx, src, store, artifacts.Options{StateDir: state, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts in %.1fs: %s", time.Since(start).Seconds(), e.Dir)
	m := e.Manifest
	if m.ImageDigest != src.Digest() || m.KernelVersion == "" || !strings.Contains(m.Cmdline, "console=ttyS0") || len(m.Root.Pieces) == 0 {
		t.Errorf("manifest: %+v", m)
	}
	if err := e.Verify(ctx); err != nil {
		t.Fatalf("fresh set does not verify: %v", err)
	}

	// The initramfs carries our module's hooks and agent and the modules a
	// live or NFS root needs.
	f, _, err := e.Open(images.Initramfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list := initramfsListing(t, f)
	for _, want := range []string{"usr/bin/imgctl-agent", "sbin/imgctlroot", "hooks/cmdline/90-parse-imgctl.sh", "hooks/pre-pivot/90-imgctl-prepivot.sh",
		"parse-livenet.sh", "parse-dmsquash-live.sh", "parse-nfsroot.sh", "virtio_net.ko", "squashfs.ko", "overlay.ko"} {
		if !strings.Contains(list, want) {
			t.Errorf("initramfs lacks %s", want)
		}
	}

	// The root image holds the image's tree: same paths as the mounted image.
	root, unmount, err := src.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := exec.CommandContext(ctx, "sh", "-c", "cd "+root+" && find . | sed 's#^\\.#squashfs-root#' | sort").Output()
	unmount()
	got, err := exec.CommandContext(ctx, "sh", "-c", "unsquashfs -l "+filepath.Join(e.Dir, m.Artifacts[images.RootFS].File)+" | grep '^squashfs-root' | sort").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("squashfs paths differ from the image's tree (%d vs %d bytes of listing)", len(got), len(want))
	}

	// Unchanged image: reused, well under a second.
	start = time.Now()
	if _, err := artifacts.Build(ctx, src, store, artifacts.Options{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second build of an unchanged image took %v, want < 1s", d)
	}

	// A corrupt copy of the set: Verify names the artifact.
	copyDir := t.TempDir()
	bad := images.NewStore(copyDir)
	stage, _ := bad.Stage(m.Name, m.ImageDigest)
	if out, err := exec.Command("cp", "-a", e.Dir+"/.", stage).CombinedOutput(); err != nil {
		t.Fatalf("copy set: %v %s", err, out)
	}
	be, err := bad.Install(stage)
	if err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(be.Dir, m.Artifacts[images.RootFS].File)
	fh, _ := os.OpenFile(rf, os.O_RDWR, 0)
	fh.WriteAt([]byte{0xde, 0xad}, 4<<20+10)
	fh.Close()
	err = be.Verify(ctx)
	var ve *images.VerifyError
	if !errors.As(err, &ve) || ve.Kind != images.RootFS {
		t.Fatalf("verify of a corrupt root image: %v, want a VerifyError naming rootfs", err)
	}
}

// initramfsListing lists a (gzip or zstd compressed, possibly early-cpio
// prefixed) initramfs with lsinitrd's helper tools: skipcpio + decompress + cpio.
func initramfsListing(t *testing.T, f *os.File) string {
	t.Helper()
	script := `set -e
f=$1
if [ -x /usr/lib/dracut/skipcpio ]; then /usr/lib/dracut/skipcpio "$f"; else cat "$f"; fi > "$2"
case "$(file -b "$2")" in
  *gzip*) zcat "$2" ;;
  *Zstandard*) zstd -dc "$2" ;;
  *) cat "$2" ;;
esac | cpio -it --quiet`
	out, err := exec.Command("sh", "-c", script, "sh", f.Name(), filepath.Join(t.TempDir(), "body")).CombinedOutput()
	if err != nil {
		t.Fatalf("list initramfs: %v\n%s", err, out[:min(len(out), 2000)])
	}
	return string(out)
}
