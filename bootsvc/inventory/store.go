package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/logging"
)

// Modify is a locked read-modify-write of the inventory file at path: it takes
// the file lock, loads, calls fn and saves if fn succeeds. Concurrent CLI
// invocations and the server's discovery writes never lose each other's updates.
func Modify(path string, fn func(*Inventory) error) (*Inventory, error) {
	unlock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	inv, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := fn(inv); err != nil {
		return nil, err
	}
	if err := inv.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := inv.Save(path); err != nil {
		return nil, err
	}
	return inv, nil
}

// Store is the server's live view of nodes.yaml: Snapshot is safe from any
// goroutine, Update writes through the file lock, and Run reloads the file when
// something else (the CLI) changes it.
type Store struct {
	path     string
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	inv  *Inventory
	seen fileID
}

// fileID tells whether the file changed since it was read.
type fileID struct {
	exists bool
	mod    time.Time
	size   int64
	ino    uint64
}

// OpenStore loads path (a missing file is an empty inventory) and returns the
// store; call Run to follow later changes.
func OpenStore(path string, log *slog.Logger) (*Store, error) {
	s := &Store{path: path, log: logging.OrDiscard(log), interval: time.Second}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the store follows.
func (s *Store) Path() string { return s.path }

// Snapshot returns the current inventory. Callers must not modify it.
func (s *Store) Snapshot() *Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inv
}

// Update applies fn to a fresh copy of the file under the file lock, saves it
// and makes it the current snapshot. An error from fn leaves everything as it was.
func (s *Store) Update(ctx context.Context, fn func(*Inventory) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	inv, err := Modify(s.path, fn)
	if err != nil {
		return err
	}
	id := stat(s.path)
	s.mu.Lock()
	s.inv, s.seen = inv, id
	s.mu.Unlock()
	return nil
}

// Reload rereads the file now if it changed; a bad file keeps the last good
// snapshot and returns the error.
func (s *Store) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	seen := s.seen
	s.mu.Unlock()
	if stat(s.path) == seen {
		return nil
	}
	return s.reload()
}

func (s *Store) reload() error {
	id := stat(s.path)
	inv, err := Load(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.inv, s.seen = inv, id
	s.mu.Unlock()
	return nil
}

// Run polls the file once a second until ctx ends and swaps in a new snapshot
// when it changed. Polling (not inotify) follows atomic renames and files on
// any filesystem. A broken edit is logged once and the old snapshot kept.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := s.Reload(ctx)
		switch {
		case err != nil && err.Error() != lastErr:
			s.log.Error("inventory reload failed; keeping the previous one", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			s.log.Info("inventory reloaded", "nodes", s.Snapshot().Len())
			lastErr = ""
		}
	}
}

func stat(path string) fileID {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return fileID{}
	}
	return fileID{exists: true, mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
}
