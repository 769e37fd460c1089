package registry

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// overlayTar is how a set's overlay/ directory (the image's overlay
// templates) travels: sets are published as flat files, so the directory
// goes as one reproducible tar and is unpacked again on pull.
const overlayTar = "overlay.tar"

// packOverlay writes dir as a reproducible tar (sorted names, numeric owners,
// modes and mtimes kept, nothing else) to a temp file and returns its path;
// "" when dir is empty. The same tree always gives the same bytes, so the
// digest is stable across publish, signing and verification.
func packOverlay(dir string) (string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil || len(names) == 0 {
		return "", err
	}
	sort.Strings(names)
	f, err := os.CreateTemp("", "imgctl-overlay-*.tar")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	for _, name := range names {
		p := filepath.Join(dir, filepath.FromSlash(name))
		st, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		link := ""
		if st.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return "", err
			}
		}
		h, err := tar.FileInfoHeader(st, link)
		if err != nil {
			return "", fmt.Errorf("overlay %s: %w", name, err)
		}
		if !st.Mode().IsRegular() && !st.IsDir() && st.Mode()&fs.ModeSymlink == 0 {
			return "", fmt.Errorf("overlay %s: only files, directories and symlinks travel", name)
		}
		h.Name, h.Uname, h.Gname, h.Format = name, "", "", tar.FormatPAX
		h.ModTime, h.AccessTime, h.ChangeTime = st.ModTime().Truncate(time.Second), time.Time{}, time.Time{}
		if st.IsDir() {
			h.Name += "/"
		}
		if link != "" {
			// A symlink's own time cannot be set through an os.Root on
			// unpack; leave it out so pack(unpack(x)) == x.
			h.ModTime = time.Unix(0, 0)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(sys.Uid), int(sys.Gid)
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if st.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ok = true
	return f.Name(), nil
}

// unpackOverlay extracts a pulled overlay tar into dir. The tar is untrusted
// until then: only files, directories and symlinks, relative names without
// "..", all written through an os.Root so no symlink leads outside dir.
func unpackOverlay(tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type dirTime struct {
		name string
		t    time.Time
	}
	var dirs []dirTime
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", overlayTar, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" || path.IsAbs(name) || !fs.ValidPath(name) {
			return fmt.Errorf("%s: refused entry %q", overlayTar, h.Name)
		}
		mode := fs.FileMode(h.Mode).Perm() | fs.FileMode(h.Mode)&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, dirTime{name, h.ModTime})
		case tar.TypeReg:
			out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", overlayTar, name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %s: %w", overlayTar, name, err)
			}
		default:
			return fmt.Errorf("%s: %s: refused entry type %q", overlayTar, name, h.Typeflag)
		}
		if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeSymlink {
			// After chown, which clears setuid/setgid.
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
			if err := root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
				return err
			}
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chtimes(dirs[i].name, dirs[i].t, dirs[i].t); err != nil {
			return err
		}
	}
	return nil
}
