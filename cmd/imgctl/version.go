package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func addVersionCommand(root *cobra.Command, g *globals) {
	root.AddCommand(&cobra.Command{
		Use:     "version",
		Short:   "Print the imgctl version",
		Example: "  imgctl version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := "devel"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v = s.Value
					}
				}
			}
			_, err := fmt.Fprintln(g.stdout, "imgctl", v)
			return err
		},
	})
}
