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

	"github.com/imgctl/imgctl/internal/atomicfile"
	"github.com/imgctl/imgctl/internal/logging"
)

// Modify is a locked read-modify-write of the inventory file at path: it takes
// the file lock, loads, calls fn and saves if fn succeeds. Concurrent CLI
// invocations and the server's discovery writes never lose each other's updates.
func Modify(path string, fn func(*Inventory) error) (*Inventory, error) {
	return modify(context.Background(), path, settleTime, fn)
}

func modify(ctx context.Context, path string, settle time.Duration, fn func(*Inventory) error) (*Inventory, error) {
	unlock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	inv, _, err := loadSettled(ctx, path, settle)
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
	markWritten(path)
	return inv, nil
}

// markWritten notes in path's lock file which version of path imgctl itself
// renamed into place, so that readers know it is whole and need not wait for
// it to settle. A missing or stale note only costs a reader the settle time.
func markWritten(path string) {
	id := stat(path)
	os.WriteFile(path+".lock", []byte(id.String()), 0o600)
}

// ownWrite reports whether id is the version markWritten noted.
func ownWrite(path string, id fileID) bool {
	b, err := os.ReadFile(path + ".lock")
	return err == nil && id.Exists && string(b) == id.String()
}

// Store is the server's live view of nodes.yaml: Snapshot is safe from any
// goroutine, Update writes through the file lock, and Run reloads the file when
// something else (the CLI) changes it.
type Store struct {
	path     string
	log      *slog.Logger
	interval time.Duration
	// settle is how long the file must stay unchanged before it is read: an
	// editor that truncates and then writes must not publish the empty file.
	settle time.Duration
	quiet  time.Duration // after a read, how long no event may come for the read to count

	mu       sync.Mutex
	inv      *Inventory
	seen     fileID
	changed  chan struct{} // closed and replaced whenever a new snapshot is published
	watch    *fileWatch    // nil: inotify unavailable, Run polls
	watchErr error
}

// OpenStore loads path (a missing file is an empty inventory) and returns the
// store; call Run to follow later changes.
func OpenStore(path string, log *slog.Logger) (*Store, error) {
	s := &Store{path: path, log: logging.OrDiscard(log), interval: time.Second, settle: settleTime, quiet: 100 * time.Millisecond, changed: make(chan struct{})}
	// Watch before the first read, so that no write after it goes unseen.
	s.watch, s.watchErr = newFileWatch(path)
	if err := s.reload(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the file watch; Run must have returned.
func (s *Store) Close() error {
	if s.watch == nil {
		return nil
	}
	return s.watch.Close()
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
	inv, err := modify(ctx, s.path, s.settle, fn)
	if err != nil {
		return err
	}
	s.publish(inv, stat(s.path))
	return nil
}

// Changed returns a channel that is closed when the next snapshot is
// published: read Snapshot after it fires, then call Changed again.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) publish(inv *Inventory, id fileID) {
	s.mu.Lock()
	s.inv, s.seen = inv, id
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
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
	return s.reload(ctx)
}

// settleTime is how long nodes.yaml must stay unchanged before it is read: an
// editor that truncates and then writes must not have its empty file taken for
// the inventory. imgctl's own writes rename a complete file into place.
const settleTime = 250 * time.Millisecond

// loadSettled reads path once it has settled: unchanged for settle, and
// unchanged across the read. Only then is its content one whole write.
func loadSettled(ctx context.Context, path string, settle time.Duration) (*Inventory, fileID, error) {
	for {
		id := stat(path)
		if wait := settle - time.Since(id.Mod); id.Exists && wait > 0 && !ownWrite(path, id) {
			select {
			case <-ctx.Done():
				return nil, id, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		inv, err := Load(path)
		if stat(path) == id {
			return inv, id, err
		}
		if ctx.Err() != nil {
			return nil, id, ctx.Err()
		}
	}
}

func (s *Store) reload(ctx context.Context) error {
	inv, id, err := loadSettled(ctx, s.path, s.settle)
	if err != nil {
		return err
	}
	s.publish(inv, id)
	return nil
}

// Run follows the file until ctx ends and publishes a new snapshot after
// each complete write by someone else (the CLI, an editor): inotify tells when
// a writer has closed the file or renamed a new one into place, so a file
// caught mid-write is never taken for the inventory. Where inotify is not
// available it polls once a second instead, reading only settled files. A
// broken edit is logged once and the old snapshot kept.
func (s *Store) Run(ctx context.Context) error {
	w := s.watch
	if w == nil {
		// A state directory made after the store opened is an ordinary case.
		lvl := slog.LevelWarn
		if errors.Is(s.watchErr, fs.ErrNotExist) {
			lvl = slog.LevelDebug
		}
		s.log.Log(ctx, lvl, "inventory: cannot watch the file; polling it", "err", s.watchErr)
		return s.poll(ctx)
	}
	var r reloadLog
	for {
		if err := w.wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		id := stat(s.path)
		if wait := s.settle - time.Since(id.Mod); id.Exists && wait > 0 && !ownWrite(s.path, id) {
			// Closed, but written so recently that the writer may be about
			// to write again (an editor truncating then writing): wait.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			w.changed = true
			continue
		}
		inv, err := Load(s.path)
		ok, werr := w.settled(s.quiet)
		if werr != nil {
			return werr
		}
		if !ok || stat(s.path) != id {
			continue // written again meanwhile: wait for that write to finish
		}
		if err == nil {
			s.publish(inv, id)
		}
		r.report(s, err)
	}
}

// reloadLog logs a broken file once, and its repair once.
type reloadLog struct{ lastErr string }

func (r *reloadLog) report(s *Store, err error) {
	switch {
	case err != nil && err.Error() != r.lastErr:
		s.log.Error("inventory reload failed; keeping the previous one", "err", err)
		r.lastErr = err.Error()
	case err == nil && r.lastErr != "":
		s.log.Info("inventory reloaded", "nodes", s.Snapshot().Len())
		r.lastErr = ""
	}
}

// poll is Run without inotify.
func (s *Store) poll(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var r reloadLog
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := s.Reload(ctx)
		if err != nil && ctx.Err() != nil {
			return nil
		}
		r.report(s, err)
	}
}

// fileID tells whether the file changed since it was read.
type fileID = atomicfile.Stamp

func stat(path string) fileID { return atomicfile.StampOf(path) }
