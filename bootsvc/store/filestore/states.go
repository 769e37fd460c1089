package filestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// ErrNotOwner is returned when a process other than the boot service tries
// to record a boot state in the file backend.
var ErrNotOwner = errors.New("file store: boot states are recorded by the boot service that owns this state directory (imgctl serve)")

// states returns the node states: the owner's live ones, or the file as the
// owner last wrote it (reread when it changed).
func (s *Store) states() (*nodestate.Store, error) {
	if s.owned != nil {
		return s.owned, nil
	}
	st, _, err := s.readStates()
	return st, err
}

// readStates rereads nodestate.json when it changed; changed reports it.
func (s *Store) readStates() (st *nodestate.Store, changed bool, err error) {
	path := filepath.Join(s.opts.StateDir, nodestate.FileName)
	v := atomicfile.StampOf(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read != nil && v == s.readID {
		return s.read, false, nil
	}
	st, err = nodestate.Open(s.opts.StateDir, 0, nil) // read only: never flushed
	if err != nil {
		return nil, false, err
	}
	s.read, s.readID = st, v
	return st, true, nil
}

// Report implements store.Store (owner only).
func (s *Store) Report(ctx context.Context, node string, r nodestate.Report) error {
	if s.owned == nil {
		return ErrNotOwner
	}
	return s.owned.Report(ctx, node, r)
}

// State implements store.Store.
func (s *Store) State(ctx context.Context, node string) (nodestate.Node, error) {
	if err := ctx.Err(); err != nil {
		return nodestate.Node{}, err
	}
	st, err := s.states()
	if err != nil {
		return nodestate.Node{}, err
	}
	return store.Found(st.Get(node))("state of %s", node)
}

// States implements store.Store.
func (s *Store) States(ctx context.Context) ([]nodestate.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.states()
	if err != nil {
		return nil, err
	}
	return st.List(), nil
}

// statePoll is how often a reader process looks for the owner's new writes.
const statePoll = 200 * time.Millisecond

// Watch implements store.Store. In a reader process the owner's state
// writes are found by checking the file's version, which costs a stat.
func (s *Store) Watch(ctx context.Context) <-chan store.Change {
	ch := s.Notifier.Watch(ctx)
	if s.owned != nil {
		return ch
	}
	out := make(chan store.Change, cap(ch))
	go func() {
		defer close(out)
		t := time.NewTicker(statePoll)
		defer t.Stop()
		before, _ := s.States(ctx)
		for {
			select {
			case c, ok := <-ch:
				if !ok {
					return
				}
				out <- c
			case <-t.C:
				if _, changed, err := s.readStates(); err != nil || !changed {
					continue
				}
				after, err := s.States(ctx)
				if err != nil {
					continue
				}
				for _, name := range changedNodes(before, after) {
					select {
					case out <- store.Change{Kind: store.StateChanged, Node: name}:
					case <-ctx.Done():
						return
					}
				}
				before = after
			}
		}
	}()
	return out
}

func changedNodes(before, after []nodestate.Node) []string {
	old := make(map[string]nodestate.Node, len(before))
	for _, n := range before {
		old[n.Name] = n
	}
	var out []string
	for _, n := range after {
		if o, ok := old[n.Name]; !ok || !reflect.DeepEqual(o, n) {
			out = append(out, n.Name)
		}
	}
	return out
}

// Export implements store.Store.
func (s *Store) Export(ctx context.Context) (*store.Dump, error) {
	inv, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	states, err := s.States(ctx)
	if err != nil {
		return nil, err
	}
	d := &store.Dump{Version: store.DumpVersion, Inventory: inv.File(), States: states, HostKeys: map[string]store.HostKey{}}
	nodes, err := s.keys.Nodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		k, err := s.keys.Get(n)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		d.HostKeys[n] = store.DumpKey(k)
	}
	if err := s.exportCloudInit(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Import implements store.Store: the dump's inventory replaces nodes.yaml,
// its states and keys replace those of the same nodes. Boot states can only
// be imported by the owner or while no boot service runs.
func (s *Store) Import(ctx context.Context, d *store.Dump) error {
	if err := store.CheckDump(d); err != nil {
		return err
	}
	inv, err := inventory.FromFile(d.Inventory)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for n, k := range d.HostKeys {
		if err := s.keys.Put(n, k.Key()); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := s.importCloudInit(ctx, d); err != nil {
		return err
	}
	if err := s.Update(ctx, func(cur *inventory.Inventory) error {
		*cur = *inv
		return nil
	}); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if len(d.States) == 0 {
		return nil
	}
	st := s.owned
	if st == nil {
		// Not serving: write the file the way the owner would.
		if st, err = nodestate.Open(s.opts.StateDir, 0, nil); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	st.Put(d.States)
	if err := st.Flush(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}
