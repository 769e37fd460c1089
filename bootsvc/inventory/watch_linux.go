package inventory

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileWatch tells, through inotify on the file's directory, when one file has
// been written completely: closed after a write, or renamed into place. A
// time-based rule cannot tell a paused writer from a finished one; the close
// can.
type fileWatch struct {
	fd   int
	name string
	buf  []byte

	writing bool // a write began and its writer has not closed the file yet
	changed bool // the file changed since the last completed read
}

func newFileWatch(path string) (*fileWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	mask := uint32(unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE | unix.IN_DELETE)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return &fileWatch{fd: fd, name: filepath.Base(path), buf: make([]byte, 64<<10)}, nil
}

func (w *fileWatch) Close() error { return unix.Close(w.fd) }

// wait blocks until the file is complete and changed since the last call to
// done, or ctx ends.
func (w *fileWatch) wait(ctx context.Context) error {
	for {
		if err := w.drain(); err != nil {
			return err
		}
		if w.changed && !w.writing {
			return nil
		}
		// Poll in short slices so that ctx is honoured without a second fd.
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			return fmt.Errorf("watch %s: %w", w.name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// settled reports, after a read, whether the file stayed untouched since wait
// returned; if not, the read may hold a partial write and must be dropped. It
// listens for quiet before it answers: the kernel truncates a file before it
// queues the event that says so, and a reader may fall into that gap.
func (w *fileWatch) settled(quiet time.Duration) (bool, error) {
	w.changed = false
	deadline := time.Now().Add(quiet)
	for {
		if err := w.drain(); err != nil {
			return false, err
		}
		if w.changed || w.writing {
			return false, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true, nil
		}
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return false, fmt.Errorf("watch %s: %w", w.name, err)
		}
	}
}

// drain reads every queued event without blocking.
func (w *fileWatch) drain() error {
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			return nil
		}
		if err != nil {
			return fmt.Errorf("watch %s: %w", w.name, err)
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			nameBytes := w.buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.changed = true // events lost: read again once quiet
				continue
			}
			if cstring(nameBytes) != w.name {
				continue
			}
			switch {
			case ev.Mask&unix.IN_MODIFY != 0:
				w.writing, w.changed = true, true
			case ev.Mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE) != 0:
				w.writing, w.changed = false, true
			case ev.Mask&unix.IN_CREATE != 0:
				w.changed = true
			}
		}
	}
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
