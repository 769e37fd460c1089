// Package filestore is the file backend of the boot-service store, the
// default with nothing to install or start: the inventory in nodes.yaml,
// boot states in nodestate.json, host keys under hostkeys/, all in the state
// directory, discovery leases in memory.
//
// One process owns the boot states of a state directory: the boot service
// (imgctl serve), opened with Options.Owner. It records them in memory and
// writes the file in batches. Every other process (the CLI, vm boot) reads
// the file as the owner last wrote it and may not report states itself.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/atomicfile"
	"github.com/imgctl/imgctl/internal/logging"
)

// Options say where the files are.
type Options struct {
	StateDir  string // required
	Inventory string // nodes.yaml; "" is <StateDir>/nodes.yaml
	// Owner makes this process the one that records boot states (the boot
	// service). Others read them.
	Owner bool
	Log   *slog.Logger // nil: discard
}

// Store is the file backend. Open it, Close it.
type Store struct {
	store.Notifier
	opts  Options
	log   *slog.Logger
	inv   *inventory.Store
	keys  *hostkeys.Store
	pool  store.Pool
	owned *nodestate.Store // Owner only
	ci    cloudInitFiles

	mu      sync.Mutex
	read    *nodestate.Store // others: the file as last read
	readID  atomicfile.Stamp
	cancel  context.CancelFunc
	running sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// Open loads the state directory's files and starts following them.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.StateDir == "" {
		return nil, errors.New("file store: no state directory")
	}
	if opts.Inventory == "" {
		opts.Inventory = filepath.Join(opts.StateDir, "nodes.yaml")
	}
	log := logging.OrDiscard(opts.Log)
	inv, err := inventory.OpenStore(opts.Inventory, log.With("server", "inventory"))
	if err != nil {
		return nil, err
	}
	s := &Store{opts: opts, log: log, inv: inv, keys: hostkeys.NewStore(filepath.Join(opts.StateDir, "hostkeys")),
		ci: cloudInitFiles{dir: filepath.Join(opts.StateDir, "cloud-init")}}
	if opts.Owner {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			inv.Close()
			return nil, fmt.Errorf("state dir: %w", err)
		}
		if s.owned, err = nodestate.Open(opts.StateDir, 0, log.With("server", "nodestate")); err != nil {
			inv.Close()
			return nil, err
		}
		s.owned.OnChange(func(node string) { s.Notify(store.Change{Kind: store.StateChanged, Node: node}) })
	} else if _, _, err := s.readStates(); err != nil {
		inv.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.running.Add(2)
	go func() {
		defer s.running.Done()
		if err := inv.Run(runCtx); err != nil {
			s.log.Error("inventory watch stopped", "err", err)
		}
	}()
	go func() {
		defer s.running.Done()
		s.forwardInventory(runCtx)
	}()
	if s.owned != nil {
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			if err := s.owned.Run(runCtx); err != nil {
				s.log.Error("node states", "err", err)
			}
		}()
	}
	return s, nil
}

// forwardInventory turns the inventory store's snapshot changes into Changes.
func (s *Store) forwardInventory(ctx context.Context) {
	for {
		ch := s.inv.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			s.Notify(store.Change{Kind: store.InventoryChanged})
		}
	}
}

// Close stops following the files and writes buffered states.
func (s *Store) Close() error {
	s.cancel()
	s.running.Wait()
	var err error
	if s.owned != nil {
		err = s.owned.Flush()
	}
	return errors.Join(err, s.inv.Close())
}

// InventoryPath is the nodes.yaml this store uses.
func (s *Store) InventoryPath() string { return s.opts.Inventory }

// Snapshot implements store.Store.
func (s *Store) Snapshot(ctx context.Context) (*inventory.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.inv.Snapshot(), nil
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, name string) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.inv.Snapshot().Node(name))("node %s", name)
}

// NodeByMAC implements store.Store.
func (s *Store) NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.inv.Snapshot().NodeByMAC(mac))("node with MAC %s", mac)
}

// NodeByIP implements store.Store.
func (s *Store) NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.inv.Snapshot().NodeByIP(ip))("node with address %s", ip)
}

// Update implements store.Store: a locked read-modify-write of nodes.yaml.
func (s *Store) Update(ctx context.Context, fn func(*inventory.Inventory) error) error {
	return s.inv.Update(ctx, fn)
}

// Lease implements store.Store.
func (s *Store) Lease(ctx context.Context, req store.LeaseRequest) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	inv := s.inv.Snapshot()
	return s.pool.Lease(req, time.Now(), func(a netip.Addr) bool { _, ok := inv.NodeByIP(a); return ok })
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, mac net.HardwareAddr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.pool.Release(mac.String())
	return nil
}

// HostKey implements store.Store.
func (s *Store) HostKey(ctx context.Context, node string) (hostkeys.Key, error) {
	if err := ctx.Err(); err != nil {
		return hostkeys.Key{}, err
	}
	return s.keys.Get(node)
}

// PublicHostKey implements store.Store.
func (s *Store) PublicHostKey(ctx context.Context, node string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pub, err := s.keys.Public(node)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host key of %s: %w", node, store.ErrNotFound)
	}
	return pub, err
}

// Reload rereads nodes.yaml now if it changed (the admin API's reload).
func (s *Store) Reload(ctx context.Context) error { return s.inv.Reload(ctx) }
