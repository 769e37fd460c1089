package main

import (
	"context"
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/bmc"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// bmcTargets resolves a hostlist of nodes to their BMCs: the inventory's
// merged BMC settings (groups in order, field by field, the node's own
// winning), then credentials from secrets (node name first, then its groups,
// last group first).
func bmcTargets(ctx context.Context, g *globals, nodes string, secrets bmc.Secrets) ([]bmc.Target, error) {
	names, err := hostlist.Expand(nodes)
	if err != nil {
		return nil, err
	}
	inv, err := g.loadInventory(ctx)
	if err != nil {
		return nil, err
	}
	invPath := g.inventoryPath()
	var out []bmc.Target
	for _, name := range names {
		n, ok := inv.Node(name)
		if !ok {
			return nil, fmt.Errorf("inventory %s: no node %q", invPath, name)
		}
		if n.BMC == nil || n.BMC.Address == "" {
			return nil, fmt.Errorf("inventory %s: node %s: no bmc.address", invPath, name)
		}
		b := n.BMC
		t := bmc.Target{Node: name, Address: b.Address, Protocol: b.Protocol, User: b.User, Password: b.Password, Insecure: b.Insecure}
		lookup := []string{name}
		for i := len(n.Groups) - 1; i >= 0; i-- {
			lookup = append(lookup, n.Groups[i])
		}
		secrets.Apply(&t, lookup...)
		out = append(out, t)
	}
	return out, nil
}
