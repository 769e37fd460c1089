package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/bmc"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// proposal is one inventory entry proposed from a BMC's answer.
type proposal struct {
	Node     string   `json:"node" yaml:"node"`
	BMC      string   `json:"bmc" yaml:"bmc"`
	System   string   `json:"system,omitempty" yaml:"system,omitempty"`
	HostName string   `json:"hostname,omitempty" yaml:"hostname,omitempty"`
	MACs     []string `json:"macs,omitempty" yaml:"macs,omitempty"`
	Error    string   `json:"error,omitempty" yaml:"error,omitempty"`
}

func addDiscoverCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:     "discover",
		Short:   "Find nodes and their NIC MACs from what BMCs report",
		Example: "  imgctl discover redfish '10.1.0.[1-20]' --user admin --name-pattern 'nid[001-020]'",
	}
	cmd.AddCommand(newDiscoverRedfishCmd(g))
	root.AddCommand(cmd)
}

func newDiscoverRedfishCmd(g *globals) *cobra.Command {
	var (
		user, passEnv, secretsFile, namePattern, group string
		insecure, apply                                bool
		fanout                                         int
		timeout                                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "redfish BMC-RANGE",
		Short: "Read systems and NIC MACs from Redfish BMCs and propose (or --apply) inventory nodes",
		Long: `Connects to every BMC address in BMC-RANGE (a hostlist, host[:port]), reads its
ComputerSystems and their EthernetInterfaces, and proposes one inventory node per
system, named from --name-pattern (in BMC order) or the system's HostName.
The password comes from $IMGCTL_BMC_PASSWORD (--password-env) or from
--bmc-secrets (entry named after the BMC address, else "default").`,
		Example: `  IMGCTL_BMC_PASSWORD=... imgctl discover redfish 'bmc[01-20]:8443' --user admin --insecure -o yaml
  imgctl discover redfish '10.1.0.[1-20]' --bmc-secrets secrets.yaml --name-pattern 'nid[001-020]' --group compute --apply`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			addrs, err := hostlist.Expand(args[0])
			if err != nil {
				return fmt.Errorf("BMC range: %w", err)
			}
			var names []string
			if namePattern != "" {
				if names, err = hostlist.Expand(namePattern); err != nil {
					return fmt.Errorf("--name-pattern: %w", err)
				}
			}
			var secrets bmc.Secrets
			if secretsFile != "" {
				if secrets, err = bmc.LoadSecrets(secretsFile); err != nil {
					return err
				}
			}
			targets := make([]bmc.Target, len(addrs))
			for i, a := range addrs {
				targets[i] = bmc.Target{Node: a, Address: a, Protocol: bmc.Redfish, User: user, Password: os.Getenv(passEnv), Insecure: insecure}
				secrets.Apply(&targets[i], a, "default")
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "discover: %d BMCs, fan-out %d\n", len(targets), fanout)
			}
			props := proposals(bmc.DiscoverAll(cmd.Context(), targets, fanout, timeout), names)
			if err := printProposals(p, props); err != nil {
				return err
			}
			failed := false
			for _, pr := range props {
				failed = failed || pr.Error != ""
			}
			if apply {
				n, err := applyProposals(cmd.Context(), g, props, group, user, insecure)
				if err != nil {
					return err
				}
				if !g.quiet {
					fmt.Fprintf(g.stderr, "added %d nodes to %s\n", n, g.inventoryPath())
				}
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "BMC user")
	f.StringVar(&passEnv, "password-env", "IMGCTL_BMC_PASSWORD", "environment variable holding the BMC password")
	f.StringVar(&secretsFile, "bmc-secrets", "", "YAML file (mode 0600): BMC address or \"default\" → user, password")
	f.BoolVar(&insecure, "insecure", false, "skip TLS verification of the BMCs (recorded in the inventory)")
	f.StringVar(&namePattern, "name-pattern", "", "hostlist of node names, given out in BMC order (default: the system's HostName)")
	f.StringVar(&group, "group", "", "group the new nodes join")
	f.BoolVar(&apply, "apply", false, "add the proposed nodes to the inventory (atomic write)")
	f.IntVar(&fanout, "fanout", 64, "BMCs contacted at once")
	f.DurationVar(&timeout, "timeout", 60*time.Second, "per-BMC time limit")
	return cmd
}

// proposals names each discovered system: the next name from names, else its
// HostName. A BMC that failed becomes one row carrying its error.
func proposals(ds []bmc.Discovery, names []string) []proposal {
	var out []proposal
	next := 0
	for _, d := range ds {
		if d.Error != "" {
			out = append(out, proposal{BMC: d.BMC, Error: d.Error})
			continue
		}
		for _, s := range d.Systems {
			pr := proposal{BMC: d.BMC, System: s.ID, HostName: s.HostName, MACs: s.MACs, Error: s.Error}
			switch {
			case next < len(names):
				pr.Node = names[next]
				next++
			case len(names) > 0:
				pr.Error = "more systems than --name-pattern names"
			case s.HostName != "":
				pr.Node = s.HostName
			default:
				pr.Error = "system reports no HostName; give --name-pattern"
			}
			out = append(out, pr)
		}
	}
	return out
}

func printProposals(p interface {
	Table(any, []string, [][]string) error
}, props []proposal) error {
	rows := make([][]string, 0, len(props))
	for _, pr := range props {
		status := "ok"
		if pr.Error != "" {
			status = "FAILED: " + pr.Error
		}
		rows = append(rows, []string{pr.Node, pr.BMC, pr.System, strings.Join(pr.MACs, ","), status})
	}
	return p.Table(props, []string{"NODE", "BMC", "SYSTEM", "MACS", "STATUS"}, rows)
}

// applyProposals adds the good proposals to the inventory (created if
// absent) in one locked, atomic write. A name already in the inventory is an
// error and nothing is written. No password is ever stored by discovery.
func applyProposals(ctx context.Context, g *globals, props []proposal, group, user string, insecure bool) (int, error) {
	added := 0
	path := g.inventoryPath()
	err := g.updateInventory(ctx, func(inv *inventory.Inventory) error {
		if _, ok := inv.Group(group); group != "" && !ok {
			// Nodes may only join groups that exist; an empty one is a start.
			if err := inv.PutGroup(group, inventory.Group{}); err != nil {
				return err
			}
		}
		for _, pr := range props {
			if pr.Error != "" || pr.Node == "" {
				continue
			}
			if _, ok := inv.Raw(pr.Node); ok {
				return fmt.Errorf("inventory %s: node %s already exists (BMC %s); nothing written", path, pr.Node, pr.BMC)
			}
			n := inventory.Node{Name: pr.Node, MACs: pr.MACs}
			if group != "" {
				n.Groups = []string{group}
			}
			n.BMC = &inventory.BMC{Address: pr.BMC, Protocol: bmc.Redfish, User: user, Insecure: insecure}
			if err := inv.Put(n); err != nil {
				return err
			}
			added++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}
