package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// knownHost is one node's host key as `node known-hosts` reports it.
type knownHost struct {
	Node string `json:"node"`
	Line string `json:"known_hosts_line"`
}

func newNodeKnownHostsCmd(g *globals) *cobra.Command {
	var create bool
	c := &cobra.Command{
		Use:   "known-hosts NODES",
		Short: "Print nodes' SSH host keys as known_hosts lines",
		Long: `Each node gets its own SSH host key from the boot service (in its overlay),
kept under <state>/hostkeys so it survives reboots and image changes. This
prints them in known_hosts form (name and address), for ~/.ssh/known_hosts or
/etc/ssh/ssh_known_hosts. Nodes that never booted have no key yet unless
--create makes one now.`,
		Example: "  imgctl node known-hosts 'nid[001-064]' >> /etc/ssh/ssh_known_hosts",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			st, err := g.openBootStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			inv, err := st.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			nodes, err := inv.Select(args[0])
			if err != nil {
				return err
			}
			var out []knownHost
			var missing []string
			for _, n := range nodes {
				var pub []byte
				if create {
					k, err := st.HostKey(cmd.Context(), n.Name)
					if err != nil {
						return err
					}
					pub = k.Public
				} else if pub, err = st.PublicHostKey(cmd.Context(), n.Name); err != nil {
					missing = append(missing, n.Name)
					continue
				}
				hosts := n.Name
				if n.Domain != "" {
					hosts += "," + n.Name + "." + n.Domain
				}
				if n.IP != "" {
					hosts += "," + n.IP
				}
				// Drop the key comment: known_hosts lines are "hosts type key".
				f := strings.Fields(string(pub))
				if len(f) < 2 {
					return fmt.Errorf("host key of %s: malformed public key", n.Name)
				}
				out = append(out, knownHost{Node: n.Name, Line: hosts + " " + f[0] + " " + f[1]})
			}
			err = p.Value(out, func(w io.Writer) error {
				for _, k := range out {
					fmt.Fprintln(w, k.Line)
				}
				return nil
			})
			if err == nil && len(missing) > 0 {
				fmt.Fprintf(g.stderr, "no host key yet (never booted; --create makes one): %s\n", strings.Join(missing, ","))
			}
			return err
		},
	}
	c.Flags().BoolVar(&create, "create", false, "create keys for nodes that have none yet")
	return c
}
