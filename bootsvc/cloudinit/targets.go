package cloudinit

import (
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// Targets turns what a user names (a group, or a hostlist of nodes such as
// nid[001-004]) into record keys. A name that is a group is that group;
// anything else must expand to inventory nodes, unless anyNode is set (a
// removal may name nodes that have left the inventory).
func Targets(inv *inventory.Inventory, name string, secure, anyNode bool) ([]Key, error) {
	if _, ok := inv.Group(name); ok {
		return []Key{{Scope: Group, Name: name, Secure: secure}}, nil
	}
	var names []string
	if anyNode {
		var err error
		if names, err = hostlist.Expand(name); err != nil {
			return nil, err
		}
	} else {
		nodes, err := inv.Select(name)
		if err != nil {
			return nil, fmt.Errorf("%s: no such group, and %w", name, err)
		}
		for _, n := range nodes {
			names = append(names, n.Name)
		}
	}
	keys := make([]Key, 0, len(names))
	for _, n := range names {
		k := Key{Scope: Node, Name: n, Secure: secure}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}
