package registry_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	nettypes "go.podman.io/common/libnetwork/types"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/cstore"
)

// openStore opens a private vfs container storage under dir, shut down at
// the end of the test.
func openStore(t *testing.T, ctx context.Context, dir string) storage.Store {
	t.Helper()
	st, err := cstore.Open(ctx, cstore.Options{GraphRoot: filepath.Join(dir, "graph"), RunRoot: filepath.Join(dir, "run"), Driver: "vfs"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Shutdown(true) })
	return st
}

// buildImage commits a scratch image with a few files and labels into st as
// imgctl/<name>:latest, the way the builder names images.
func buildImage(t *testing.T, ctx context.Context, st storage.Store, name string, labels map[string]string) *storage.Image {
	t.Helper()
	src := t.TempDir()
	for f, body := range map[string]string{"os-release": "NAME=imgctl-test\n", "hostname": name + "\n"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := buildah.NewBuilder(ctx, st, buildah.BuilderOptions{
		FromImage:       "scratch",
		Isolation:       define.IsolationChroot,
		SystemContext:   &types.SystemContext{},
		CommonBuildOpts: &define.CommonBuildOptions{},
		// No command runs in this image, so it needs no network; a non-nil
		// interface stops buildah looking for netavark.
		NetworkInterface: noNetwork{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Delete()
	for k, v := range labels {
		b.SetLabel(k, v)
	}
	if err := b.Add("/etc", false, buildah.AddAndCopyOptions{}, filepath.Join(src, "os-release"), filepath.Join(src, "hostname")); err != nil {
		t.Fatal(err)
	}
	ref, err := istorage.Transport.ParseStoreReference(st, "imgctl/"+name+":latest")
	if err != nil {
		t.Fatal(err)
	}
	id, _, _, err := b.Commit(ctx, ref, buildah.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.Image(id)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// noNetwork satisfies buildah's network interface for builds that run nothing.
type noNetwork struct{ nettypes.ContainerNetwork }

// imageDigest is the digest a build records in the artifact manifest.
func imageDigest(img *storage.Image) string {
	if img.Digest != "" {
		return img.Digest.String()
	}
	return "sha256:" + img.ID
}

// writeSet installs a small artifact set (random "kernel", "initramfs", a
// 2.5 MiB "root image" in 1 MiB pieces, overlay templates) for img
// into state, as images/artifacts.Build would.
func writeSet(t *testing.T, ctx context.Context, state, name, digest string) *images.Entry {
	t.Helper()
	return writeSetSized(t, ctx, state, name, digest, 5<<19)
}

// writeSetSized is writeSet with a root image of rootSize bytes.
func writeSetSized(t *testing.T, ctx context.Context, state, name, digest string, rootSize int) *images.Entry {
	t.Helper()
	s := images.NewStore(state)
	dir, err := s.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{
		Version: images.ManifestVersion, Name: name, ImageRef: "imgctl/" + name + ":latest", ImageDigest: digest,
		KernelVersion: "6.1.0-test", Cmdline: "console=ttyS0", Created: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
		Artifacts: map[string]images.Artifact{},
		Root:      images.RootImage{Format: "squashfs", Compression: "zstd", PieceSize: 1 << 20},
	}
	files := []struct {
		kind, file string
		size       int
	}{
		{images.Kernel, "vmlinuz", 64 << 10},
		{images.Initramfs, "initramfs.img", 128 << 10},
		{images.RootFS, "rootfs.squashfs", rootSize},
	}
	// Overlay templates, as artifacts.Build copies them from the image.
	registry.WriteTestOverlay(t, dir)
	for _, f := range files {
		b := make([]byte, f.size)
		rand.Read(b)
		p := filepath.Join(dir, f.file)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if f.kind == "" {
			continue
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		pieces, sum, err := images.HashPieces(ctx, fh, m.Root.PieceSize)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts[f.kind] = images.Artifact{File: f.file, Size: int64(f.size), SHA256: sum}
		if f.kind == images.RootFS {
			m.Root.Pieces = pieces
		}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := s.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
