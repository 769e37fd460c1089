// Package store is the boot service's state behind one interface: the
// inventory (nodes and groups), each node's boot state and phases, discovery
// leases and per-node SSH host keys, with change notification. Backends: the
// file backend (store/filestore: nodes.yaml and files under the state
// directory, the default, nothing to install or start) and Memory, the
// in-memory fake beside the interface. Every backend passes the same
// conformance suite (store/storetest).
//
// Consumers (DHCP, HTTP, NFS, the CLI, VM boots) define the few methods they
// need as their own interfaces; a Store satisfies all of them.
package store

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// ErrNotFound is returned (wrapped) for a node, state or key that is not there.
var ErrNotFound = errors.New("not found")

// ErrPoolExhausted is returned by Lease when no address of the range is free.
var ErrPoolExhausted = errors.New("discovery pool exhausted")

// Store is every piece of boot-service state. Every method takes a context
// and is safe for concurrent use. Nodes come back merged with their groups.
type Store interface {
	// Snapshot returns the current inventory; callers must not modify it.
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
	Node(ctx context.Context, name string) (inventory.Node, error)
	NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error)
	NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error)
	// Update is a read-modify-write of the inventory: fn changes a private
	// copy, which replaces the inventory only if fn and validation succeed.
	// Concurrent updates, from this process or another, never lose each other.
	Update(ctx context.Context, fn func(*inventory.Inventory) error) error

	// Report applies a boot report to the node's state (nodestate.Apply).
	Report(ctx context.Context, node string, r nodestate.Report) error
	State(ctx context.Context, node string) (nodestate.Node, error)
	States(ctx context.Context) ([]nodestate.Node, error)

	// Lease gives mac an address of the request's range for a discovery
	// lease: its current one if it has one, else the first address neither
	// leased nor an inventory node's.
	Lease(ctx context.Context, req LeaseRequest) (netip.Addr, error)
	Release(ctx context.Context, mac net.HardwareAddr) error

	// HostKey returns node's SSH host key, creating it on first use.
	HostKey(ctx context.Context, node string) (hostkeys.Key, error)
	// PublicHostKey returns node's public key line, or ErrNotFound when it
	// has none yet (it never booted).
	PublicHostKey(ctx context.Context, node string) ([]byte, error)

	// Watch delivers a Change after each change until ctx ends, then closes
	// the channel. A slow reader gets a Resync instead of what it missed.
	Watch(ctx context.Context) <-chan Change

	// Cloud-init data (store/cloudinit.go says more): each group's and
	// node's public and secure records, and each node's instance-id.
	CloudInit(ctx context.Context, k cloudinit.Key) (cloudinit.Data, error)
	PutCloudInit(ctx context.Context, k cloudinit.Key, d cloudinit.Data) error
	DeleteCloudInit(ctx context.Context, k cloudinit.Key) error
	CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error)
	InstanceID(ctx context.Context, node, image string) (string, error)

	// Export and Import move everything between backends (imgctl store).
	Export(ctx context.Context) (*Dump, error)
	Import(ctx context.Context, d *Dump) error

	// Close flushes what is buffered and releases the backend.
	Close() error
}

// LeaseRequest asks for a discovery address.
type LeaseRequest struct {
	MAC         net.HardwareAddr
	First, Last netip.Addr    // the pool's range, inclusive
	TTL         time.Duration // how long the lease holds without renewal
}

// ChangeKind says what changed.
type ChangeKind string

// Change kinds.
const (
	InventoryChanged ChangeKind = "inventory" // nodes or groups
	StateChanged     ChangeKind = "state"     // one node's boot state
	Resync           ChangeKind = "resync"    // changes were missed: read everything again
)

// Change is one notification from Watch.
type Change struct {
	Kind ChangeKind
	Node string // the node, for StateChanged
}

// Dump is a whole store in a backend-neutral form (imgctl store export).
type Dump struct {
	Version   int                `yaml:"version" json:"version"`
	Inventory inventory.File     `yaml:"inventory" json:"inventory"`
	States    []nodestate.Node   `yaml:"states,omitempty" json:"states,omitempty"`
	HostKeys  map[string]HostKey `yaml:"host_keys,omitempty" json:"-"` // private keys: YAML export only
	// CloudInit holds every cloud-init record, secure parts included.
	CloudInit   []CloudInitRecord     `yaml:"cloud_init,omitempty" json:"-"`
	InstanceIDs map[string]InstanceID `yaml:"instance_ids,omitempty" json:"-"`
}

// HostKey is a node's SSH host key in a Dump, as the OpenSSH file texts.
type HostKey struct {
	Type    string `yaml:"type"`
	Private string `yaml:"private"`
	Public  string `yaml:"public"`
}

// DumpKey converts a host key for a Dump.
func DumpKey(k hostkeys.Key) HostKey {
	return HostKey{Type: k.Type, Private: string(k.Private), Public: string(k.Public)}
}

// Key converts a Dump's host key back.
func (k HostKey) Key() hostkeys.Key {
	return hostkeys.Key{Type: k.Type, Private: []byte(k.Private), Public: []byte(k.Public)}
}

// DumpVersion is the Dump format this imgctl writes and reads.
const DumpVersion = 1
