package artifacts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchArtifacts measures the artifact steps against baselines run in the
// same process: the squashfs step vs a bare mksquashfs of the same tree with
// the same options, manifest piece hashing vs sha256sum on the same file, a
// cold dracut run vs a reused initramfs, and a second build of an unchanged
// image. Runs only with IMGCTL_BENCH=1 (make bench).
func TestBenchArtifacts(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: set IMGCTL_BENCH=1 (make bench)")
	}
	testenv.RequireRoot(t)
	recipe := "layers/compute-base.yaml"
	if r := os.Getenv("IMGCTL_BENCH_RECIPE"); r != "" {
		recipe = r
	}
	src := buildtest.Image(t, recipe)
	ctx := context.Background()
	root, unmount, err := src.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unmount()
	dir := t.TempDir()
	mkfs := time.Unix(0, 0)

	// Squashfs step vs bare mksquashfs (best of 2 each, alternating).
	ours, bare := time.Duration(1<<62), time.Duration(1<<62)
	for i := 0; i < 2; i++ {
		argv, _ := artifacts.RootFSArgs("squashfs", "zstd", root, filepath.Join(dir, "ours.sqfs"), mkfs)
		start := time.Now()
		if err := artifacts.MakeRootFS(ctx, argv, nil); err != nil {
			t.Fatal(err)
		}
		ours = min(ours, time.Since(start))
		start = time.Now()
		cmd := exec.Command(argv[0], append([]string{argv[1], filepath.Join(dir, "bare.sqfs")}, argv[3:]...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bare mksquashfs: %v %s", err, out)
		}
		bare = min(bare, time.Since(start))
	}

	// Piece hashing vs sha256sum on the same file (page cache warm for both).
	file := filepath.Join(dir, "ours.sqfs")
	st, _ := os.Stat(file)
	exec.Command("sha256sum", file).Run()
	start := time.Now()
	if out, err := exec.Command("sha256sum", file).CombinedOutput(); err != nil {
		t.Fatalf("sha256sum: %v %s", err, out)
	}
	shaSum := time.Since(start)
	f, _ := os.Open(file)
	start = time.Now()
	if _, _, err := images.HashPieces(ctx, f, images.DefaultPieceSize); err != nil {
		t.Fatal(err)
	}
	pieces := time.Since(start)
	f.Close()

	// Initramfs: cold dracut vs reused, and the whole second build.
	state := t.TempDir()
	store := images.NewStore(state)
	start = time.Now()
	if _, err := artifacts.Build(ctx, src, store, artifacts.Options{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	start = time.Now()
	if _, err := artifacts.Build(ctx, src, store, artifacts.Options{StateDir: state, Force: true}); err != nil {
		t.Fatal(err)
	}
	warmInitramfs := time.Since(start)
	start = time.Now()
	if _, err := artifacts.Build(ctx, src, store, artifacts.Options{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	second := time.Since(start)

	mb := float64(st.Size()) / (1 << 20)
	res := map[string]any{
		"image":                        recipe,
		"root_image_mib":               mb,
		"squashfs_step_s":              ours.Seconds(),
		"bare_mksquashfs_s":            bare.Seconds(),
		"squashfs_ratio_vs_mksquashfs": ours.Seconds() / bare.Seconds(),
		"squashfs_goal":                "<= 1.05",
		"piece_hash_mib_s":             mb / pieces.Seconds(),
		"sha256sum_mib_s":              mb / shaSum.Seconds(),
		"hash_throughput_ratio":        shaSum.Seconds() / pieces.Seconds(),
		"hash_goal":                    ">= 0.80",
		"artifacts_cold_s":             cold.Seconds(),
		"artifacts_initramfs_reused_s": warmInitramfs.Seconds(),
		"second_build_unchanged_s":     second.Seconds(),
		"second_build_goal":            "< 1 s",
	}
	t.Logf("%+v", res)
	if err := benchresult.Write("artifacts.json", res); err != nil {
		t.Fatal(err)
	}
}
