package store

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// Memory is a Store that keeps everything in memory: the fake for tests of
// consumers, and the reference the conformance suite holds backends to.
type Memory struct {
	Notifier
	pool Pool
	now  func() time.Time

	mu     sync.Mutex
	inv    *inventory.Inventory
	states map[string]nodestate.Node
	keys   map[string]hostkeys.Key
	ci     memoryCloudInit
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, inv: &inventory.Inventory{}, states: map[string]nodestate.Node{}, keys: map[string]hostkeys.Key{}}
}

var _ Store = (*Memory)(nil)

// Snapshot implements Store.
func (m *Memory) Snapshot(ctx context.Context) (*inventory.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inv, nil
}

// Node implements Store.
func (m *Memory) Node(ctx context.Context, name string) (inventory.Node, error) {
	inv, err := m.Snapshot(ctx)
	if err != nil {
		return inventory.Node{}, err
	}
	return Found(inv.Node(name))("node %s", name)
}

// NodeByMAC implements Store.
func (m *Memory) NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error) {
	inv, err := m.Snapshot(ctx)
	if err != nil {
		return inventory.Node{}, err
	}
	return Found(inv.NodeByMAC(mac))("node with MAC %s", mac)
}

// NodeByIP implements Store.
func (m *Memory) NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error) {
	inv, err := m.Snapshot(ctx)
	if err != nil {
		return inventory.Node{}, err
	}
	return Found(inv.NodeByIP(ip))("node with address %s", ip)
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, fn func(*inventory.Inventory) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := EditCopy(m.inv, fn)
	if err != nil {
		return err
	}
	m.inv = next
	m.Notify(Change{Kind: InventoryChanged})
	return nil
}

// EditCopy applies fn to a copy of inv and returns the validated result;
// inv is not touched. Backends that hold a whole inventory share it.
func EditCopy(inv *inventory.Inventory, fn func(*inventory.Inventory) error) (*inventory.Inventory, error) {
	work, err := inventory.FromFile(inv.File())
	if err != nil {
		return nil, err
	}
	if err := fn(work); err != nil {
		return nil, err
	}
	return inventory.FromFile(work.File())
}

// Report implements Store.
func (m *Memory) Report(ctx context.Context, node string, r nodestate.Report) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	n, ok := m.states[node]
	if !ok {
		n = nodestate.Node{Name: node}
	}
	n = copyState(n)
	changed, err := nodestate.Apply(&n, r, m.now())
	if changed {
		m.states[node] = n
	}
	m.mu.Unlock()
	if changed {
		m.Notify(Change{Kind: StateChanged, Node: node})
	}
	return err
}

// State implements Store.
func (m *Memory) State(ctx context.Context, node string) (nodestate.Node, error) {
	if err := ctx.Err(); err != nil {
		return nodestate.Node{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.states[node]
	if !ok {
		return nodestate.Node{}, fmt.Errorf("state of %s: %w", node, ErrNotFound)
	}
	return copyState(n), nil
}

// States implements Store.
func (m *Memory) States(ctx context.Context) ([]nodestate.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	out := make([]nodestate.Node, 0, len(m.states))
	for _, n := range m.states {
		out = append(out, copyState(n))
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lease implements Store.
func (m *Memory) Lease(ctx context.Context, req LeaseRequest) (netip.Addr, error) {
	inv, err := m.Snapshot(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	return m.pool.Lease(req, m.now(), func(a netip.Addr) bool { _, ok := inv.NodeByIP(a); return ok })
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, mac net.HardwareAddr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.pool.Release(mac.String())
	return nil
}

// HostKey implements Store.
func (m *Memory) HostKey(ctx context.Context, node string) (hostkeys.Key, error) {
	if err := ctx.Err(); err != nil {
		return hostkeys.Key{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[node]; ok {
		return k, nil
	}
	k, err := hostkeys.Generate(node)
	if err != nil {
		return hostkeys.Key{}, err
	}
	m.keys[node] = k
	return k, nil
}

// PublicHostKey implements Store.
func (m *Memory) PublicHostKey(ctx context.Context, node string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[node]
	if !ok {
		return nil, fmt.Errorf("host key of %s: %w", node, ErrNotFound)
	}
	return k.Public, nil
}

// Export implements Store.
func (m *Memory) Export(ctx context.Context) (*Dump, error) {
	states, err := m.States(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &Dump{Version: DumpVersion, Inventory: m.inv.File(), States: states, HostKeys: map[string]HostKey{}}
	for n, k := range m.keys {
		d.HostKeys[n] = DumpKey(k)
	}
	m.ci.export(d)
	return d, nil
}

// Import implements Store: the dump replaces the inventory, and its states
// and keys replace those of the same nodes.
func (m *Memory) Import(ctx context.Context, d *Dump) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckDump(d); err != nil {
		return err
	}
	inv, err := inventory.FromFile(d.Inventory)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.inv = inv
	for _, n := range d.States {
		m.states[n.Name] = copyState(n)
	}
	for n, k := range d.HostKeys {
		m.keys[n] = k.Key()
	}
	m.ci.importDump(d)
	m.mu.Unlock()
	m.Notify(Change{Kind: Resync})
	return nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

// CheckDump refuses a dump this imgctl cannot read.
func CheckDump(d *Dump) error {
	if d == nil {
		return fmt.Errorf("import: empty dump")
	}
	if d.Version != DumpVersion {
		return fmt.Errorf("import: dump version %d, this imgctl reads version %d", d.Version, DumpVersion)
	}
	return nil
}

// Found turns a lookup's (value, ok) into (value, error) naming what was
// looked for: store.Found(inv.Node(name))("node %s", name).
func Found[T any](v T, ok bool) func(format string, args ...any) (T, error) {
	return func(format string, args ...any) (T, error) {
		if !ok {
			return v, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
		}
		return v, nil
	}
}

func copyState(n nodestate.Node) nodestate.Node {
	if n.Phases != nil {
		p := make(map[nodestate.State]time.Time, len(n.Phases))
		for k, v := range n.Phases {
			p[k] = v
		}
		n.Phases = p
	}
	return n
}
