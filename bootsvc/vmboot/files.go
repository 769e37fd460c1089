package vmboot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// FileNodes is Nodes over an inventory file (nodes.yaml), read afresh on
// every call.
type FileNodes string

// Node implements Nodes.
func (path FileNodes) Node(_ context.Context, name string) (inventory.Node, error) {
	inv, err := inventory.Load(string(path))
	if err != nil {
		return inventory.Node{}, err
	}
	n, ok := inv.Node(name)
	if !ok {
		return inventory.Node{}, fmt.Errorf("%w in inventory %s", ErrNotFound, string(path))
	}
	return n, nil
}

// FileStates is States over the node state file in a state directory
// (nodestate.Open), read afresh on every call.
type FileStates string

// State implements States.
func (stateDir FileStates) State(_ context.Context, node string) (nodestate.Node, error) {
	st, err := nodestate.Open(string(stateDir), 0, nil)
	if err != nil {
		return nodestate.Node{}, err
	}
	n, ok := st.Get(node)
	if !ok {
		return nodestate.Node{}, fmt.Errorf("boot state of %s: %w", node, ErrNotFound)
	}
	return n, nil
}

// FileHostKeys is HostKeys over <state>/hostkeys/NODE/ (bootsvc/hostkeys).
type FileHostKeys string

// HostKey implements HostKeys; a node that never booted has none (an error
// wrapping ErrNotFound).
func (stateDir FileHostKeys) HostKey(_ context.Context, node string) ([]byte, error) {
	k, err := hostkeys.NewStore(filepath.Join(string(stateDir), "hostkeys")).Public(node)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("host key of %s: %w", node, ErrNotFound)
	}
	return k, err
}
