// Package vmboot boots inventory nodes as QEMU virtual machines through a
// private boot service: for each node it takes the node's inventory entry
// (with this boot's image and mode overrides), writes a one-node inventory
// for a private `imgctl serve` running inside the VM's network namespace,
// starts the machine (internal/vm), follows the node's boot states until it
// reports booted, optionally runs a hook on the running node, and reports
// the console and server phases. `imgctl vm boot`, nightly image CI and the
// end-to-end tests use it.
//
// The boot service stays a subprocess (`imgctl serve`) so that its
// nfs-ganesha, loop mounts and sockets live and die inside the namespace.
// Node data, boot states and host keys come through the small interfaces
// below, so a different store can be passed in without touching the
// orchestration.
package vmboot

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/vm"
)

// Nodes looks nodes up.
type Nodes interface {
	// Node returns name's effective entry, merged with its groups; an
	// error wrapping store.ErrNotFound when there is none.
	Node(ctx context.Context, name string) (inventory.Node, error)
}

// States reads the boot states the boot service records.
type States interface {
	// State returns node's last recorded boot state; an error wrapping
	// store.ErrNotFound when nothing was recorded for it yet.
	State(ctx context.Context, node string) (nodestate.Node, error)
}

// HostKeys hands out the nodes' SSH host keys, the ones the boot service
// puts into their overlays.
type HostKeys interface {
	// PublicHostKey returns node's public host key in authorized_keys
	// form ("ssh-ed25519 AAAA… comment").
	PublicHostKey(ctx context.Context, node string) ([]byte, error)
}

// Options say how to boot. Nodes and States and StateDir are required.
type Options struct {
	// StateDir is the state directory the private boot service serves
	// (artifacts, host keys, node states); the VM's files go to
	// <StateDir>/vm/<node>/.
	StateDir string
	Nodes    Nodes
	// States must see what the private service records: the state
	// directory's store, opened as a reader.
	States States
	// HostKeys gives the nodes' host keys; required with OnBooted.
	HostKeys HostKeys

	Image string             // boot this image instead of the node's; "" = the node's
	Mode  inventory.BootMode // boot mode instead of the node's; "" = the node's (live if unset)

	MemoryMiB int           // guest memory; 0 = 1024
	Timeout   time.Duration // per node, from the start of its boot; 0 = 6 min
	// BridgeAddr is the boot service's address on the VM's bridge (CIDR);
	// "" = .1 of the node's subnet (.254 when the node is .1).
	BridgeAddr string

	Exe         string   // imgctl binary for the private `imgctl serve`; "" = this executable
	ServeConfig string   // serve configuration file; "" = none
	ServeSets   []string // serve --set KEY=VALUE settings
	// Serve runs the private boot service, argv inside ns, until ctx ends;
	// nil = vm.ServeProcess(argv, log). Tests wrap it to stop and restart it.
	Serve func(ctx context.Context, ns *netns.NS, argv []string, log io.Writer) error

	// Accel chooses QEMU's accelerator; nil = a vm.Prober kept for one
	// BootAll (or one Boot).
	Accel func(ctx context.Context) vm.AccelChoice
	QEMU  string // emulator; "" = qemu-system-x86_64

	// OnBooted runs once a node reported booted, before its machine is
	// stopped, within the node's Timeout. Its error fails the boot (the
	// result still says booted). nil = stop at once.
	OnBooted func(ctx context.Context, n BootedNode) error
	// SSHIdentity is an unencrypted OpenSSH private key for BootedNode's
	// commands; its public key is added to the node's authorized keys for
	// this boot. "" = a fresh ed25519 key made for the boot and removed
	// after it. Used only with OnBooted.
	SSHIdentity string

	Console  io.Writer // echo of the serial console; nil = none
	Progress io.Writer // one line per phase as it is seen; nil = none
	Log      *slog.Logger
}

// Phase is one step of a boot as seen on the console or by the boot service.
type Phase struct {
	Source string  `json:"source"` // console | server
	Phase  string  `json:"phase"`
	At     float64 `json:"at_s"` // seconds after QEMU started
}

// Result is what one node's boot showed. Its JSON form is `imgctl vm boot
// -o json`'s, so the field names are stable.
type Result struct {
	Node        string   `json:"node"`
	Image       string   `json:"image"`
	Mode        string   `json:"mode"`
	Booted      bool     `json:"booted"`
	Seconds     float64  `json:"seconds"`
	Accel       vm.Accel `json:"accel,omitempty"`
	AccelReason string   `json:"accel_reason,omitempty"` // why this accelerator
	Phases      []Phase  `json:"phases"`
	Digest      string   `json:"image_digest,omitempty"`
	RootMount   string   `json:"root_mount,omitempty"`
	Hostname    string   `json:"hostname,omitempty"`
	Reason      string   `json:"reason,omitempty"`   // the node's own failure report
	Failures    []string `json:"failures,omitempty"` // console lines that mean trouble
	Error       string   `json:"error,omitempty"`
	ConsoleLog  string   `json:"console_log"`
	ServeLog    string   `json:"serve_log"`
	QEMULog     string   `json:"qemu_log,omitempty"`

	// Timeline is the node's own systemd timeline from its booted report.
	Timeline *nodestate.Timeline `json:"timeline,omitempty"`
}
