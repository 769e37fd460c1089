package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// nodeFlags are node add/set's per-node values plus the shared settings.
type nodeFlags struct {
	settingsFlags
	macs    []string
	macFile string
	ips     string
	groups  []string
}

func addNodeCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage the node inventory (nodes.yaml)",
		Long: `Nodes are named by hostlists ("nid[001-064]"). Each has MACs, an IPv4
address, groups and settings of its own that win over its groups'. Writes are
atomic and serialised by a lock, so concurrent invocations lose nothing; a
running 'imgctl serve' picks changes up within a second.`,
		Example: `  imgctl node add 'nid[001-004]' --mac-file macs.txt --ip '10.0.0.[1-4]' --group compute
  imgctl node ls -o json`,
	}
	cmd.AddCommand(newNodeAddCmd(g), newNodeSetCmd(g), newNodeLsCmd(g), newNodeRmCmd(g), newNodeKnownHostsCmd(g))
	root.AddCommand(cmd)
}

func (f *nodeFlags) register(c *cobra.Command) {
	f.settingsFlags.register(c.Flags())
	c.Flags().StringSliceVar(&f.macs, "mac", nil, "MAC per node, in hostlist order (comma-separated or repeated)")
	c.Flags().StringVar(&f.macFile, "mac-file", "", "file with one MAC per line, in hostlist order (# comments allowed)")
	c.Flags().StringVar(&f.ips, "ip", "", "address hostlist, one per node in order, e.g. '10.0.0.[1-9]'")
	c.Flags().StringSliceVar(&f.groups, "group", nil, "groups, merged in order (replaces the node's list on set)")
}

// perNode returns the MACs and IPs given for names, each list empty or as
// long as names.
func (f *nodeFlags) perNode(names []string) (macs, ips []string, err error) {
	macs = f.macs
	if f.macFile != "" {
		if len(f.macs) > 0 {
			return nil, nil, &usageError{msg: "--mac and --mac-file: give one"}
		}
		if macs, err = readMACFile(f.macFile); err != nil {
			return nil, nil, err
		}
	}
	if f.ips != "" {
		if ips, err = hostlist.Expand(f.ips); err != nil {
			return nil, nil, &usageError{msg: fmt.Sprintf("--ip: %v", err)}
		}
	}
	for _, l := range []struct {
		what string
		n    int
	}{{"MACs", len(macs)}, {"addresses", len(ips)}} {
		if l.n != 0 && l.n != len(names) {
			return nil, nil, &usageError{msg: fmt.Sprintf("%d %s for %d nodes (%s): give one per node", l.n, l.what, len(names), hostlist.Compress(names))}
		}
	}
	return macs, ips, nil
}

func readMACFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mac file: %w", err)
	}
	defer f.Close()
	var macs []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if _, err := parseMAC(s); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		macs = append(macs, s)
	}
	return macs, sc.Err()
}

func newNodeAddCmd(g *globals) *cobra.Command {
	f := &nodeFlags{}
	c := &cobra.Command{
		Use:   "add NODES",
		Short: "Add nodes (all or none)",
		Example: `  imgctl node add 'nid[001-009]' --mac-file macs.txt --ip '10.0.0.[1-9]' --group compute
  imgctl node add login1 --mac 52:54:00:12:34:56 --ip 10.0.1.1 --image login --mode live --var role=login --bmc 10.1.1.1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := hostlist.Expand(args[0])
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			macs, ips, err := f.perNode(names)
			if err != nil {
				return err
			}
			err = g.updateInventory(cmd.Context(), func(inv *inventory.Inventory) error {
				for i, name := range names {
					if _, ok := inv.Raw(name); ok {
						return fmt.Errorf("node %s already exists (use node set)", name)
					}
					n := inventory.Node{Name: name, Groups: f.groups}
					if macs != nil {
						n.MACs = []string{macs[i]}
					}
					if ips != nil {
						n.IP = ips[i]
					}
					if err := f.apply(cmd.Flags(), &n.Settings); err != nil {
						return err
					}
					if err := inv.Put(n); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil && !g.quiet {
				fmt.Fprintf(g.stderr, "added %d nodes: %s\n", len(names), hostlist.Compress(names))
			}
			return err
		},
	}
	f.register(c)
	return c
}

func newNodeSetCmd(g *globals) *cobra.Command {
	f := &nodeFlags{}
	c := &cobra.Command{
		Use:   "set NODES",
		Short: "Change nodes' settings (only the flags given)",
		Example: `  imgctl node set 'nid[001-004]' --image compute-v2 --mode nfs
  imgctl node set nid007 --mac 52:54:00:00:00:07 --var gpu=a100 --unset-var old`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := hostlist.Expand(args[0])
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			macs, ips, err := f.perNode(names)
			if err != nil {
				return err
			}
			err = g.updateInventory(cmd.Context(), func(inv *inventory.Inventory) error {
				if _, err := inv.Select(args[0]); err != nil {
					return err
				}
				for i, name := range names {
					n, _ := inv.Raw(name)
					if macs != nil {
						n.MACs = []string{macs[i]}
					}
					if ips != nil {
						n.IP = ips[i]
					}
					if cmd.Flags().Changed("group") {
						n.Groups = f.groups
					}
					if err := f.apply(cmd.Flags(), &n.Settings); err != nil {
						return err
					}
					if err := inv.Put(n); err != nil {
						return err
					}
				}
				return nil
			})
			return err
		},
	}
	f.register(c)
	return c
}

func newNodeRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NODES",
		Short:   "Remove nodes",
		Example: "  imgctl node rm 'nid[010-012]'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.updateInventory(cmd.Context(), func(inv *inventory.Inventory) error {
				nodes, err := inv.Select(args[0])
				if err != nil {
					return err
				}
				for _, n := range nodes {
					inv.Remove(n.Name)
				}
				return nil
			})
			return err
		},
	}
}

func newNodeLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls [NODES]",
		Short:   "List nodes, merged with their groups, with their boot state",
		Example: "  imgctl node ls\n  imgctl node ls 'nid[001-016]' -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			s, err := g.openBootStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			inv, err := s.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			nodes := inv.Nodes()
			if len(args) == 1 {
				if nodes, err = inv.Select(args[0]); err != nil {
					return err
				}
			}
			states, err := s.States(cmd.Context())
			if err != nil {
				return err
			}
			views, rows := nodeListing(nodes, stateMap(states), currentDigests(g.stateDir), time.Now())
			return p.Table(views, []string{"NODE", "MACS", "IP", "GROUPS", "IMAGE", "MODE", "STATE", "SINCE", "BOOTED-DIGEST", "PHASES", "USERSPACE", "SLOWEST-UNITS"}, rows)
		},
	}
}
