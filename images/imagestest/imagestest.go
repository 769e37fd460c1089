// Package imagestest installs small, valid artifact sets for tests of the
// code that reads them (the resolver, the boot service).
package imagestest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/images"
)

// InstallSet installs an artifact set of image name at digest into st: a
// kernel, an initramfs and a root image whose contents are their kind names,
// with a manifest that passes the store's checks.
func InstallSet(t testing.TB, st *images.Store, name, digest string) *images.Entry {
	t.Helper()
	return InstallSetRoot(t, st, name, digest, strings.NewReader(images.RootFS), 1<<16)
}

// InstallSetRoot is InstallSet with the root image read from root and
// hashed in pieces of pieceSize (benchmarks give it hundreds of MiB).
func InstallSetRoot(t testing.TB, st *images.Store, name, digest string, root io.Reader, pieceSize int64) *images.Entry {
	t.Helper()
	dir, err := st.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, Cmdline: "console=ttyS0  quiet",
		Created: time.Unix(1700000000, 0).UTC(), Artifacts: map[string]images.Artifact{}}
	files := map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img"}
	for kind, file := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(kind), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(kind))
		m.Artifacts[kind] = images.Artifact{File: file, Size: int64(len(kind)), SHA256: hex.EncodeToString(sum[:])}
	}
	f, err := os.Create(filepath.Join(dir, "rootfs.squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	size, err := io.Copy(f, root)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Root = images.RootImage{Format: "squashfs", PieceSize: pieceSize}
	rf, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	var whole string
	if m.Root.Pieces, whole, err = images.HashPieces(context.Background(), rf, m.Root.PieceSize); err != nil {
		t.Fatal(err)
	}
	m.Artifacts[images.RootFS] = images.Artifact{File: "rootfs.squashfs", Size: size, SHA256: whole}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := st.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
