// Package images stores the boot artifacts derived from OCI images: kernel,
// initramfs, root image and manifest, content-addressed by image digest under
// <state>/artifacts/<name>/<digest-hex>/. It is the only package both the build
// side and the boot side import.
package images

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// ManifestVersion is the schema version written into every manifest.
const ManifestVersion = 1

// DefaultPieceSize is the size of the root image pieces hashed in the manifest
// (the unit of peer and multicast distribution).
const DefaultPieceSize = 4 << 20

// Artifact kinds, the keys of Manifest.Artifacts.
const (
	Kernel    = "kernel"
	Initramfs = "initramfs"
	RootFS    = "rootfs"
)

// File names inside an artifact directory.
const (
	ManifestFile = "manifest.json"
)

// Manifest describes one set of boot artifacts. It is written last, so a
// directory with a manifest is complete.
type Manifest struct {
	Version       int                 `json:"version"`
	Name          string              `json:"name"`         // image name, e.g. compute-base
	ImageRef      string              `json:"image_ref"`    // e.g. imgctl/compute-base:latest
	ImageDigest   string              `json:"image_digest"` // "sha256:<hex>" of the OCI image
	KernelVersion string              `json:"kernel_version"`
	Cmdline       string              `json:"cmdline"` // default kernel command line from the recipe
	Created       time.Time           `json:"created"`
	Artifacts     map[string]Artifact `json:"artifacts"` // by kind: kernel, initramfs, rootfs
	Root          RootImage           `json:"root"`
	Labels        map[string]string   `json:"labels,omitempty"`
}

// Artifact is one file of a set, with what a server needs before serving it.
type Artifact struct {
	File   string `json:"file"`   // name inside the artifact directory
	Size   int64  `json:"size"`   // bytes
	SHA256 string `json:"sha256"` // hex
}

// RootImage describes the root filesystem image and its pieces.
type RootImage struct {
	Format      string   `json:"format"`      // squashfs | erofs
	Compression string   `json:"compression"` // zstd, xz, gzip, lz4, lz4hc, none
	PieceSize   int64    `json:"piece_size"`
	Pieces      []string `json:"pieces"` // hex sha256 of each piece, in order
}

// DigestHex returns the hex part of an "sha256:<hex>" digest (or the input when
// it has no algorithm prefix).
func DigestHex(d string) string {
	if len(d) > 7 && d[:7] == "sha256:" {
		return d[7:]
	}
	return d
}

// ReadManifest reads and checks a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// Validate reports what a manifest lacks to be servable.
func (m *Manifest) Validate() error {
	switch {
	case m.Version != ManifestVersion:
		return fmt.Errorf("manifest version %d, want %d", m.Version, ManifestVersion)
	case m.Name == "":
		return fmt.Errorf("manifest has no name")
	case m.ImageDigest == "":
		return fmt.Errorf("manifest has no image digest")
	}
	for _, k := range []string{Kernel, Initramfs, RootFS} {
		a, ok := m.Artifacts[k]
		if !ok {
			return fmt.Errorf("manifest lacks the %s artifact", k)
		}
		if a.File == "" || len(a.SHA256) != 64 {
			return fmt.Errorf("manifest: %s artifact has no file or a bad sha256", k)
		}
	}
	if m.Root.PieceSize <= 0 {
		return fmt.Errorf("manifest: root piece size %d", m.Root.PieceSize)
	}
	want := (m.Artifacts[RootFS].Size + m.Root.PieceSize - 1) / m.Root.PieceSize
	if int64(len(m.Root.Pieces)) != want {
		return fmt.Errorf("manifest: %d root pieces, want %d for %d bytes", len(m.Root.Pieces), want, m.Artifacts[RootFS].Size)
	}
	return nil
}

// KindOf returns the kind of the artifact stored in file, or "" (also for a
// nil manifest).
func (m *Manifest) KindOf(file string) string {
	if m == nil {
		return ""
	}
	for k, a := range m.Artifacts {
		if a.File == file {
			return k
		}
	}
	return ""
}
