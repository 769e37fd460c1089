package atomicfile

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Stamp tells one version of a file from another: a file replaced by
// rename gets a new inode, one rewritten in place a new size or mtime. The
// zero Stamp is a missing file.
type Stamp struct {
	Exists bool
	Ino    uint64
	Size   int64
	Mod    time.Time
}

// StampOf returns path's stamp (the zero Stamp if it cannot be read).
func StampOf(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	s := Stamp{Exists: true, Size: fi.Size(), Mod: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Ino = st.Ino
	}
	return s
}

// String is a compact form, for notes written beside the file.
func (s Stamp) String() string {
	return fmt.Sprintf("%d %d %d\n", s.Ino, s.Size, s.Mod.UnixNano())
}
