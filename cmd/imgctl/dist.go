package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/dist"
)

func addDistCommands(root *cobra.Command, g *globals) {
	c := &cobra.Command{
		Use:   "dist",
		Short: "Root image distribution (tree and multicast modes) as the boot service sees it",
	}
	c.AddCommand(newDistStatusCmd(g))
	root.AddCommand(c)
}

func newDistStatusCmd(g *globals) *cobra.Command {
	server := os.Getenv("IMGCTL_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	multicast := false
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each tree and multicast transfer: its nodes, pieces held, sources and rates",
		Long: `Asks a running ` + "`imgctl serve`" + ` (its HTTP public URL, --server or
$IMGCTL_SERVER) for the tree coordinator's transfers: one per root image,
each node's source (@server is the boot server), verified pieces held,
pieces received per source, mean rate, and whether it holds a verified copy.
Multicast transfers follow in the same form, their nodes' source
@multicast, pieces counted as @multicast (completed from datagrams) or
@server (repaired over HTTP). --multicast shows the senders instead:
group, rate, bytes sent, carousel passes and each receiver's repair bytes.
The same figures are on /metrics (imgctl_dist_*).`,
		Example: "  imgctl dist status --server http://10.43.0.1:8080\n  imgctl dist status -o json\n  imgctl dist status --multicast",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			if multicast {
				ms, err := dist.FetchMulticastStatus(ctx, server)
				if err != nil {
					return err
				}
				return printMulticast(p, ms)
			}
			st, err := dist.FetchStatus(ctx, server)
			if err != nil {
				return err
			}
			if st == nil {
				st = []dist.TransferStatus{}
			}
			// A boot service without the multicast API (older) has only tree transfers.
			if ms, err := dist.FetchMulticastStatus(ctx, server); err == nil {
				for _, m := range ms {
					st = append(st, m.AsTransfer())
				}
			}
			var rows [][]string
			for _, t := range st {
				for _, n := range t.Nodes {
					rows = append(rows, []string{t.Transfer, n.Node, n.Source, fmt.Sprintf("%d/%d", n.Held, t.Pieces),
						fromText(n.From), fmt.Sprintf("%.1f", n.Rate/(1<<20)), fmt.Sprint(n.Done), fmt.Sprint(n.Alive), fmt.Sprint(n.Bad)})
				}
			}
			return p.Table(st, []string{"TRANSFER", "NODE", "SOURCE", "HELD", "FROM", "MiB/s", "DONE", "ALIVE", "BAD"}, rows)
		},
	}
	c.Flags().StringVar(&server, "server", server, "boot service HTTP URL")
	c.Flags().BoolVar(&multicast, "multicast", false, "show the multicast senders and their receivers' repairs")
	return c
}

// fromText is "a:30,@server:2", sources sorted.
func fromText(from map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(from)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, from[k]))
	}
	return strings.Join(parts, ",")
}
