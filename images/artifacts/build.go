package artifacts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/atomicfile"
	"github.com/imgctl/imgctl/internal/logging"
)

// Options tune Build.
type Options struct {
	StateDir  string       // state directory; the initramfs cache lives under it
	Log       *slog.Logger // nil = discard
	Progress  io.Writer    // step lines; nil = none
	Force     bool         // rebuild even when the image's artifacts exist
	PieceSize int64        // root image piece size; 0 = images.DefaultPieceSize
}

// Artifact file names in a set directory.
const (
	KernelFile    = "vmlinuz"
	InitramfsFile = "initramfs.img"
	OverlayDir    = "overlay"
)

// Build flattens src into a boot artifact set in store and makes it current
// for its name. An existing set for the same image digest is reused unless
// opts.Force. Nothing is visible in the store until the set is complete.
func Build(ctx context.Context, src images.Source, store *images.Store, opts Options) (*images.Entry, error) {
	log := logging.OrDiscard(opts.Log)
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(progress, "[%s artifacts +%.1fs] %s\n", src.Name(), time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	name, digest := src.Name(), src.Digest()
	if e, err := store.Get(name, digest); err == nil && !opts.Force {
		if err := store.SetCurrent(name, digest); err != nil {
			return nil, err
		}
		e.Current = true
		step("reused %s", e.Dir)
		return e, nil
	}
	var boot images.BootSpec
	if s := src.Labels()[images.LabelBoot]; s != "" {
		if err := json.Unmarshal([]byte(s), &boot); err != nil {
			return nil, fmt.Errorf("%s: boot label: %w", src.Ref(), err)
		}
	}
	root, unmount, err := src.Mount(ctx)
	if err != nil {
		return nil, err
	}
	defer unmount()

	kernel, kver, err := findKernel(root, boot.Kernel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Ref(), err)
	}
	plan, err := planInitramfs(root, kver, boot.Initramfs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Ref(), err)
	}
	stage, err := store.Stage(name, digest)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage) // gone after Install renames it; removes leftovers on failure

	step("kernel %s", kver)
	if err := copyFile(kernel, filepath.Join(stage, KernelFile)); err != nil {
		return nil, err
	}
	if err := copyOverlayTemplates(ctx, root, filepath.Join(stage, OverlayDir)); err != nil {
		return nil, err
	}

	format, comp := boot.RootFS.Format, boot.RootFS.Compression
	if format == "" {
		format = "squashfs"
	}
	rootFile := "rootfs." + format
	argv, err := RootFSArgs(format, comp, root, filepath.Join(stage, rootFile), mkfsTime(src))
	if err != nil {
		return nil, err
	}
	step("root image: %s", argv[0])
	t := time.Now()
	if err := makeRootFS(ctx, argv, progress); err != nil {
		return nil, fmt.Errorf("%s: root image: %w", src.Ref(), err)
	}
	log.Info("root image made", "image", name, "format", format, "seconds", time.Since(t).Seconds())

	step("initramfs (dracut %s)", plan.key[:12])
	t = time.Now()
	initrd, cached, err := buildInitramfs(ctx, src, plan, filepath.Join(opts.StateDir, "cache", "initramfs"), progress)
	if err != nil {
		return nil, err
	}
	if cached {
		step("initramfs reused from cache")
	} else {
		step("initramfs built in %.1fs", time.Since(t).Seconds())
	}
	if err := copyFile(initrd, filepath.Join(stage, InitramfsFile)); err != nil {
		return nil, err
	}

	step("manifest")
	m, err := writeManifest(ctx, stage, src, kver, boot, format, comp, rootFile, opts.PieceSize)
	if err != nil {
		return nil, err
	}
	e, err := store.Install(stage)
	if err != nil {
		return nil, err
	}
	step("installed %s (%d root pieces) in %.1fs", e.Dir, len(m.Root.Pieces), time.Since(start).Seconds())
	return e, nil
}

// mkfsTime is the root image's own timestamp: the image's creation time when
// the source knows it, else a fixed epoch, so equal trees give equal images.
func mkfsTime(src images.Source) time.Time {
	if s := src.Labels()["org.opencontainers.image.created"]; s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t
		}
	}
	return time.Unix(0, 0)
}

// copyOverlayTemplates copies the image's /etc/imgctl/overlay (modes kept) so
// the boot service can render node overlays without the image.
func copyOverlayTemplates(ctx context.Context, root, dest string) error {
	srcDir := filepath.Join(root, "etc/imgctl/overlay")
	if _, err := os.Stat(srcDir); err != nil {
		return os.MkdirAll(dest, 0o755)
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", srcDir, dest).CombinedOutput(); err != nil {
		return fmt.Errorf("copy overlay templates: %w: %s", err, out)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
