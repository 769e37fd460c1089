package capture

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// filter reads the node's tar stream and writes what belongs in the new layer
// to out. In diff mode root holds the parent's tree and entries identical to
// it are left out; every path seen is recorded so removals can be found.
type filter struct {
	root         string
	diff         bool
	keepHostKeys bool
	progress     io.Writer
	log          *slog.Logger
	started      time.Time
	lastReport   time.Time

	seen                                      map[string]bool
	written                                   map[string]bool // regular files written (hard link targets)
	files, added, changed, removed, unchanged int
	bytes                                     int64
}

func (f *filter) run(ctx context.Context, in io.Reader, out io.Writer) error {
	f.written = map[string]bool{}
	tr := tar.NewReader(in)
	tw := tar.NewWriter(out)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the node's stream: %w", err)
		}
		name := path.Clean("/" + h.Name)
		f.files++
		f.bytes += h.Size
		f.report()
		if name == "/" {
			continue
		}
		f.seen[name] = true
		if name == machineID && h.Typeflag == tar.TypeReg {
			// Each node gets its own machine-id at first boot.
			h.Size = 0
			if err := f.emit(tw, h, nil, name); err != nil {
				return err
			}
			continue
		}
		if !f.diff {
			f.added++
			if err := f.emit(tw, h, tr, name); err != nil {
				return err
			}
			continue
		}
		same, body, err := f.sameAsParent(h, tr, name)
		if err != nil {
			return err
		}
		if same {
			f.unchanged++
			continue
		}
		if body == nil {
			body = tr
		}
		if err := f.emit(tw, h, body, name); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (f *filter) emit(tw *tar.Writer, h *tar.Header, body io.Reader, name string) error {
	if f.diff {
		if _, err := os.Lstat(filepath.Join(f.root, name)); err == nil {
			f.changed++
		} else {
			f.added++
		}
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeReg && h.Size > 0 && body != nil {
		if _, err := io.CopyN(tw, body, h.Size); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	if h.Typeflag == tar.TypeReg {
		f.written[name] = true
	}
	return nil
}

// sameAsParent compares an entry with the parent's file at the same path:
// type, mode, owner, xattrs, link target, device numbers, and for regular
// files of equal size the content. When it had to read the content to compare,
// it returns that content as body so the entry can still be written.
func (f *filter) sameAsParent(h *tar.Header, tr io.Reader, name string) (bool, io.Reader, error) {
	p := filepath.Join(f.root, name)
	st, err := os.Lstat(p)
	if err != nil {
		return false, nil, nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != h.Uid || int(sys.Gid) != h.Gid || !sameMode(st, h) || !sameXattrs(p, h) {
		return false, nil, nil
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return st.IsDir(), nil, nil
	case tar.TypeSymlink:
		target, err := os.Readlink(p)
		return err == nil && target == h.Linkname, nil, nil
	case tar.TypeChar, tar.TypeBlock:
		return uint32(h.Devmajor) == unix.Major(uint64(sys.Rdev)) && uint32(h.Devminor) == unix.Minor(uint64(sys.Rdev)), nil, nil
	case tar.TypeFifo:
		return st.Mode()&fs.ModeNamedPipe != 0, nil, nil
	case tar.TypeLink:
		// Same if the parent links the same two paths and the target is unchanged.
		target := path.Clean("/" + h.Linkname)
		tst, err := os.Lstat(filepath.Join(f.root, target))
		return err == nil && !f.written[target] && os.SameFile(st, tst), nil, nil
	case tar.TypeReg:
		if !st.Mode().IsRegular() || st.Size() != h.Size {
			return false, nil, nil
		}
		return sameContent(p, tr, h.Size)
	}
	return false, nil, nil
}

// sameContent compares the next size bytes of tr with the file at p. The
// bytes read are kept so a differing entry can still be written.
func sameContent(p string, tr io.Reader, size int64) (bool, io.Reader, error) {
	local, err := os.Open(p)
	if err != nil {
		return false, nil, nil
	}
	defer local.Close()
	var kept bytes.Buffer
	a, b := make([]byte, 1<<16), make([]byte, 1<<16)
	same := true
	for remaining := size; remaining > 0; {
		n := int(min(int64(len(a)), remaining))
		if _, err := io.ReadFull(tr, a[:n]); err != nil {
			return false, nil, fmt.Errorf("stream %s: %w", p, err)
		}
		kept.Write(a[:n])
		if same {
			if _, err := io.ReadFull(local, b[:n]); err != nil || !bytes.Equal(a[:n], b[:n]) {
				same = false
			}
		}
		remaining -= int64(n)
	}
	if same {
		return true, nil, nil
	}
	return false, &kept, nil
}

func sameMode(st fs.FileInfo, h *tar.Header) bool {
	sys := st.Sys().(*syscall.Stat_t)
	return int64(sys.Mode&0o7777) == h.Mode&0o7777
}

// sameXattrs compares the entry's SCHILY.xattr records with the file's xattrs.
func sameXattrs(p string, h *tar.Header) bool {
	want := map[string]string{}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			want[name] = v
		}
	}
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return len(want) == 0
	}
	have := 0
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		have++
		val := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil || want[name] != string(val[:m]) {
			return false
		}
	}
	return have == len(want)
}

// removeMissing deletes from the working container what the parent has and
// the node no longer does; overlayfs records each as a whiteout in the layer.
// Excluded paths are not captured, so they are never treated as removed.
func (f *filter) removeMissing(ctx context.Context, excludes []string) error {
	return filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := "/" + strings.TrimPrefix(strings.TrimPrefix(p, f.root), "/")
		if name == "/" || f.seen[name] {
			return nil
		}
		if excluded(name, excludes) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		f.removed++
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// excluded reports whether name matches an exclusion (a glob or a prefix).
func excluded(name string, excludes []string) bool {
	for _, e := range excludes {
		if ok, _ := path.Match(e, name); ok {
			return true
		}
		if strings.HasSuffix(e, "/*") && strings.HasPrefix(name, strings.TrimSuffix(e, "*")) {
			return true
		}
		if name == e || strings.HasPrefix(name, e+"/") {
			return true
		}
	}
	return false
}

func (f *filter) report() {
	if time.Since(f.lastReport) < time.Second {
		return
	}
	f.lastReport = time.Now()
	el := time.Since(f.started).Seconds()
	fmt.Fprintf(f.progress, "[capture] %d files, %s, %.1f MiB/s\n", f.files, human(f.bytes), float64(f.bytes)/(1<<20)/max(el, 0.001))
}
