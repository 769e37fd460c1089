package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// settingsFlags are the inventory settings nodes and groups share. Only flags
// given on the command line change anything.
type settingsFlags struct {
	image, mode, cmdline, netmask, gateway, domain, bmc, bmcProto, bmcUser string
	dns, vars, unsetVars, overlays, sshKeyFiles                            []string
	distribution, rack, switchLabel                                        string
	mcastGroup, mcastRate                                                  string
	mcastPort                                                              int
}

func (f *settingsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.image, "image", "", "image (artifact set) name")
	fs.StringVar(&f.mode, "mode", "", "boot mode: live or nfs")
	fs.StringVar(&f.cmdline, "cmdline", "", "kernel command line additions")
	fs.StringVar(&f.netmask, "netmask", "", "netmask, dotted or /prefix")
	fs.StringVar(&f.gateway, "gateway", "", "default gateway (DHCP router option)")
	fs.StringSliceVar(&f.dns, "dns", nil, "name servers (comma-separated or repeated)")
	fs.StringVar(&f.domain, "domain", "", "DNS domain")
	fs.StringArrayVar(&f.vars, "var", nil, "overlay variable KEY=VALUE (repeatable)")
	fs.StringArrayVar(&f.unsetVars, "unset-var", nil, "remove overlay variable KEY (repeatable)")
	fs.StringSliceVar(&f.overlays, "overlay", nil, "extra overlay template directories")
	fs.StringArrayVar(&f.sshKeyFiles, "ssh-key-file", nil, "public key file whose keys go to root's authorized_keys on the node (repeatable; replaces the list; '' clears it)")
	fs.StringVar(&f.bmc, "bmc", "", "BMC address (host[:port] or URL)")
	fs.StringVar(&f.bmcProto, "bmc-protocol", "", "BMC protocol: redfish, ipmi or auto")
	fs.StringVar(&f.bmcUser, "bmc-user", "", "BMC user name")
	fs.StringVar(&f.distribution, "distribution", "", "root image distribution: http (default), tree (from peers) or multicast (see imgctl dist status)")
	fs.StringVar(&f.mcastGroup, "multicast-group", "", "multicast: IPv4 group the boot server sends the root image to, e.g. 239.255.74.1")
	fs.IntVar(&f.mcastPort, "multicast-port", 0, "multicast: UDP port (default 7074)")
	fs.StringVar(&f.mcastRate, "multicast-rate", "", "multicast: sending rate, e.g. 95mbit (under the slowest node link)")
	fs.StringVar(&f.rack, "rack", "", "topology label: tree sources prefer nodes in the same rack")
	fs.StringVar(&f.switchLabel, "switch", "", "topology label: then nodes on the same switch")
}

// apply writes the changed flags into s.
func (f *settingsFlags) apply(fs *pflag.FlagSet, s *inventory.Settings) error {
	ch := fs.Changed
	setStr := func(name string, dst *string, v string) {
		if ch(name) {
			*dst = v
		}
	}
	setStr("image", &s.Image, f.image)
	setStr("cmdline", &s.Cmdline, f.cmdline)
	setStr("netmask", &s.Netmask, f.netmask)
	setStr("gateway", &s.Gateway, f.gateway)
	setStr("domain", &s.Domain, f.domain)
	setStr("distribution", &s.Distribution, f.distribution)
	setStr("rack", &s.Rack, f.rack)
	setStr("switch", &s.Switch, f.switchLabel)
	if ch("multicast-group") || ch("multicast-port") || ch("multicast-rate") {
		m := inventory.Multicast{}
		if s.Multicast != nil {
			m = *s.Multicast
		}
		setStr("multicast-group", &m.Group, f.mcastGroup)
		setStr("multicast-rate", &m.Rate, f.mcastRate)
		if ch("multicast-port") {
			m.Port = f.mcastPort
		}
		s.Multicast = &m
		if m == (inventory.Multicast{}) {
			s.Multicast = nil
		}
	}
	if ch("mode") {
		if f.mode != "" && f.mode != string(inventory.ModeLive) && f.mode != string(inventory.ModeNFS) {
			return &usageError{msg: fmt.Sprintf("--mode %q: want live or nfs", f.mode)}
		}
		s.Mode = inventory.BootMode(f.mode)
	}
	if ch("dns") {
		s.DNS = f.dns
	}
	if ch("overlay") {
		s.Overlays = f.overlays
	}
	if ch("ssh-key-file") {
		keys, err := readAuthorizedKeys(f.sshKeyFiles)
		if err != nil {
			return err
		}
		s.SSHKeys = keys
	}
	if len(f.vars) > 0 || len(f.unsetVars) > 0 {
		vars := map[string]string{}
		for k, v := range s.Vars {
			vars[k] = v
		}
		for _, kv := range f.vars {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return &usageError{msg: fmt.Sprintf("--var %q: want KEY=VALUE", kv)}
			}
			vars[k] = v
		}
		for _, k := range f.unsetVars {
			delete(vars, k)
		}
		s.Vars = vars
		if len(vars) == 0 {
			s.Vars = nil
		}
	}
	if ch("bmc") || ch("bmc-protocol") || ch("bmc-user") {
		b := inventory.BMC{}
		if s.BMC != nil {
			b = *s.BMC
		}
		setStr("bmc", &b.Address, f.bmc)
		setStr("bmc-protocol", &b.Protocol, f.bmcProto)
		setStr("bmc-user", &b.User, f.bmcUser)
		s.BMC = &b
	}
	return nil
}

func addGroupCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage node groups (settings their nodes inherit)",
		Long: `A group carries settings (image, mode, network options, overlay variables,
BMC defaults) that its nodes inherit. A node's groups merge in order, later
ones winning; the node's own values win over all of them.`,
		Example: `  imgctl group add compute --image compute-base --mode live --domain cluster.local
  imgctl group ls -o json`,
	}
	cmd.AddCommand(newGroupPutCmd(g, true), newGroupPutCmd(g, false), newGroupLsCmd(g), newGroupRmCmd(g))
	root.AddCommand(cmd)
}

func newGroupPutCmd(g *globals, add bool) *cobra.Command {
	f := &settingsFlags{}
	verb, short := "set", "Change a group's settings"
	if add {
		verb, short = "add", "Create a group"
	}
	c := &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: fmt.Sprintf("  imgctl group %s compute --image compute-base --var site=north --dns 10.0.0.254", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			err := g.updateInventory(cmd.Context(), func(inv *inventory.Inventory) error {
				grp, exists := inv.Group(name)
				switch {
				case add && exists:
					return fmt.Errorf("group %s already exists (use group set)", name)
				case !add && !exists:
					return fmt.Errorf("group %s: no such group (use group add)", name)
				}
				if err := f.apply(cmd.Flags(), &grp.Settings); err != nil {
					return err
				}
				return inv.PutGroup(name, grp)
			})
			return err
		},
	}
	f.register(c.Flags())
	return c
}

func newGroupLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List groups with their settings and members",
		Example: "  imgctl group ls\n  imgctl group ls -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			inv, err := g.loadInventory(cmd.Context())
			if err != nil {
				return err
			}
			groups := inv.Groups()
			rows := make([][]string, 0, len(groups))
			for i := range groups {
				if b := groups[i].BMC; b != nil {
					c := *b
					c.Password = "" // never printed
					groups[i].BMC = &c
				}
				gr := groups[i]
				rows = append(rows, []string{gr.Name, dash(gr.Image), dash(string(gr.Mode)), fmt.Sprint(len(gr.Nodes)), dash(varsString(gr.Vars))})
			}
			return p.Table(groups, []string{"GROUP", "IMAGE", "MODE", "NODES", "VARS"}, rows)
		},
	}
}

func newGroupRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Short:   "Remove groups no node uses",
		Example: "  imgctl group rm old-compute",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.updateInventory(cmd.Context(), func(inv *inventory.Inventory) error {
				for _, name := range args {
					if err := inv.RemoveGroup(name); err != nil {
						return err
					}
				}
				return nil
			})
			return err
		},
	}
}

func varsString(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + vars[k]
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
