package main

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/bmc"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// readInventoryFile reads nodes.yaml. It stands in until bootsvc/inventory
// grows Load/Select; only the BMC section is merged here.
func readInventoryFile(path string) (*inventory.File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	f := &inventory.File{}
	if err := yaml.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return f, nil
}

// bmcTargets resolves a hostlist of nodes to their BMCs: group BMC settings
// merged in order, the node's own winning, then credentials from secrets
// (node name first, then its groups, last group first).
func bmcTargets(invPath, nodes string, secrets bmc.Secrets) ([]bmc.Target, error) {
	names, err := hostlist.Expand(nodes)
	if err != nil {
		return nil, err
	}
	f, err := readInventoryFile(invPath)
	if err != nil {
		return nil, err
	}
	var out []bmc.Target
	for _, name := range names {
		n, ok := f.Nodes[name]
		if !ok || n == nil {
			return nil, fmt.Errorf("inventory %s: no node %q", invPath, name)
		}
		var merged inventory.BMC
		for _, gname := range n.Groups {
			grp, ok := f.Groups[gname]
			if !ok || grp == nil {
				return nil, fmt.Errorf("inventory %s: node %s: unknown group %q", invPath, name, gname)
			}
			mergeBMC(&merged, grp.BMC)
		}
		mergeBMC(&merged, n.BMC)
		if merged.Address == "" {
			return nil, fmt.Errorf("inventory %s: node %s: no bmc.address", invPath, name)
		}
		t := bmc.Target{Node: name, Address: merged.Address, Protocol: merged.Protocol,
			User: merged.User, Password: merged.Password, Insecure: merged.Insecure}
		lookup := []string{name}
		for i := len(n.Groups) - 1; i >= 0; i-- {
			lookup = append(lookup, n.Groups[i])
		}
		secrets.Apply(&t, lookup...)
		out = append(out, t)
	}
	return out, nil
}

func mergeBMC(dst, src *inventory.BMC) {
	if src == nil {
		return
	}
	if src.Address != "" {
		dst.Address = src.Address
	}
	if src.Protocol != "" {
		dst.Protocol = src.Protocol
	}
	if src.User != "" {
		dst.User = src.User
	}
	if src.Password != "" {
		dst.Password = src.Password
	}
	if src.Insecure {
		dst.Insecure = true
	}
}
