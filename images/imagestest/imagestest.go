// Package imagestest installs small, valid artifact sets for tests of the
// code that reads them (the resolver, the boot service).
package imagestest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	dir, err := st.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, Cmdline: "console=ttyS0  quiet",
		Created: time.Unix(1700000000, 0).UTC(), Artifacts: map[string]images.Artifact{}}
	files := map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img", images.RootFS: "rootfs.squashfs"}
	for kind, file := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(kind), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(kind))
		m.Artifacts[kind] = images.Artifact{File: file, Size: int64(len(kind)), SHA256: hex.EncodeToString(sum[:])}
	}
	m.Root = images.RootImage{Format: "squashfs", PieceSize: 1 << 16}
	if m.Root.Pieces, _, err = images.HashPieces(context.Background(), strings.NewReader(images.RootFS), m.Root.PieceSize); err != nil {
		t.Fatal(err)
	}
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
