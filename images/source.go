package images

import (
	"context"
	"io"
)

// Labels imgctl puts on the OCI images it builds.
const (
	LabelRecipe   = "org.imgctl.recipe"   // recipe name
	LabelCacheKey = "org.imgctl.cachekey" // layer cache key (hex sha256)
	LabelParent   = "org.imgctl.parent"   // parent image reference or "scratch"
	LabelBoot     = "org.imgctl.boot"     // JSON BootSpec; present ⇒ bootable
	LabelPublish  = "org.imgctl.publish"  // JSON publish spec from the recipe
	LabelTest     = "org.imgctl.test"     // JSON list of test commands from the recipe
)

// Source is an image to flatten into boot artifacts. The builder implements it
// for images in containers/storage; DirSource implements it for a plain root
// directory. Implementations are used by one goroutine at a time.
type Source interface {
	// Name is the image name (the recipe name), e.g. "compute-base".
	Name() string
	// Ref is a human reference, e.g. "imgctl/compute-base:latest".
	Ref() string
	// Digest is the image's content digest, "sha256:<hex>".
	Digest() string
	// Labels are the image's labels (see Label*).
	Labels() map[string]string
	// Mount gives a read-only view of the image's root filesystem until unmount
	// is called.
	Mount(ctx context.Context) (root string, unmount func() error, err error)
	// Run runs argv inside a writable, throwaway copy of the image (chroot
	// isolation, host network) with binds mounted, streaming its output to out.
	Run(ctx context.Context, argv []string, binds []Bind, out io.Writer) error
}

// Bind mounts a host directory into the container for Source.Run.
type Bind struct {
	Host, Container string
	ReadOnly        bool
}

// BootSpec is a recipe's `boot:` section, carried on the image as LabelBoot and
// inherited by children. Its presence makes an image bootable.
type BootSpec struct {
	Kernel    string        `yaml:"kernel,omitempty" json:"kernel,omitempty"` // vmlinuz-<version> to use when the image has several
	Cmdline   string        `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`
	Initramfs InitramfsSpec `yaml:"initramfs,omitempty" json:"initramfs,omitempty"`
	RootFS    RootFSSpec    `yaml:"rootfs,omitempty" json:"rootfs,omitempty"`
}

// InitramfsSpec tunes the dracut run.
type InitramfsSpec struct {
	DracutModules []string `yaml:"dracut_modules,omitempty" json:"dracut_modules,omitempty"` // added to what imgctl always adds
	Drivers       []string `yaml:"drivers,omitempty" json:"drivers,omitempty"`               // extra kernel drivers
	Omit          []string `yaml:"omit,omitempty" json:"omit,omitempty"`                     // dracut modules to omit
}

// RootFSSpec chooses the root image format.
type RootFSSpec struct {
	Format      string `yaml:"format,omitempty" json:"format,omitempty"`           // squashfs (default) | erofs
	Compression string `yaml:"compression,omitempty" json:"compression,omitempty"` // zstd (default) | xz | gzip | lz4 (erofs: lz4, lz4hc)
}
