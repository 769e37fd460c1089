package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// DirSource is a plain root directory seen as a Source: an unpacked image, a
// debootstrapped tree, or a mounted root. Run chroots into the directory itself
// (not a copy), with /proc, /sys, /dev and a tmpfs /tmp mounted in a private
// mount namespace that disappears with the command.
type DirSource struct {
	Root        string
	ImageName   string
	ImageDigest string // "sha256:<hex>"; identifies the tree for caching
	ImageLabels map[string]string
}

func (d *DirSource) Name() string              { return d.ImageName }
func (d *DirSource) Ref() string               { return d.Root }
func (d *DirSource) Digest() string            { return d.ImageDigest }
func (d *DirSource) Labels() map[string]string { return d.ImageLabels }

// Mount returns the directory itself; there is nothing to undo.
func (d *DirSource) Mount(ctx context.Context) (string, func() error, error) {
	if st, err := os.Stat(d.Root); err != nil || !st.IsDir() {
		return "", nil, fmt.Errorf("root %s: not a directory", d.Root)
	}
	return d.Root, func() error { return nil }, nil
}

// Run runs argv chrooted into the directory.
func (d *DirSource) Run(ctx context.Context, argv []string, binds []Bind, out io.Writer) error {
	if len(argv) == 0 {
		return errors.New("run: empty command")
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	r := q(d.Root)
	script := []string{
		"set -e",
		"mount -t proc proc " + r + "/proc",
		"mount --rbind /sys " + r + "/sys",
		"mount --rbind /dev " + r + "/dev",
		"mount -t tmpfs tmpfs " + r + "/tmp",
	}
	for _, b := range binds {
		target := filepath.Join(d.Root, b.Container)
		script = append(script, "mkdir -p "+q(target), "mount --bind "+q(b.Host)+" "+q(target))
		if b.ReadOnly {
			script = append(script, "mount -o remount,bind,ro "+q(target))
		}
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = q(a)
	}
	script = append(script, "exec chroot "+r+" "+strings.Join(quoted, " "))
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", strings.Join(script, "\n"))
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s in %s: %w", strings.Join(argv, " "), d.Root, err)
	}
	return nil
}

// DirDigest identifies a root directory's content for caching: a sha256 over
// every entry's path, type, mode, owner, size and mtime (not file contents,
// which would mean reading the whole tree).
func DirDigest(ctx context.Context, root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var uid, gid uint32
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid = st.Uid, st.Gid
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %o %d:%d %d %d\n", rel, info.Mode(), uid, gid, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", root, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
