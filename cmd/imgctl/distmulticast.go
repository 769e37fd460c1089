package main

import (
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/internal/output"
)

// printMulticast prints the multicast senders, one row per receiver.
func printMulticast(p *output.Printer, ms []dist.MulticastStatus) error {
	if ms == nil {
		ms = []dist.MulticastStatus{}
	}
	var rows [][]string
	for _, t := range ms {
		head := []string{t.Transfer, t.Group, fmt.Sprintf("%.1f", float64(t.RateBPS)/1e6), fmt.Sprint(t.Sending), fmt.Sprint(t.Passes),
			fmt.Sprintf("%.1f", float64(t.BytesSent)/(1<<20))}
		if len(t.Nodes) == 0 {
			rows = append(rows, append(head, "", "", "", "", "", ""))
		}
		for _, n := range t.Nodes {
			rows = append(rows, append(head, n.Node, fmt.Sprintf("%d/%d", n.Held, t.Pieces), fmt.Sprint(n.Multicast), fmt.Sprint(n.Repaired),
				fmt.Sprintf("%.2f", float64(n.RepairBytes)/(1<<20)), fmt.Sprint(n.Done)))
		}
	}
	return p.Table(ms, []string{"TRANSFER", "GROUP", "Mbit/s", "SENDING", "PASSES", "SENT MiB", "NODE", "HELD", "MULTICAST", "REPAIRED", "REPAIR MiB", "DONE"}, rows)
}
