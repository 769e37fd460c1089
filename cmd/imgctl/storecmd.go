package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

func addStoreCommands(root *cobra.Command, g *globals) {
	c := &cobra.Command{
		Use:   "store",
		Short: "Back up or move the boot-service state (nodes, groups, boot states, host keys)",
	}
	c.AddCommand(newStoreExportCmd(g), newStoreImportCmd(g))
	root.AddCommand(c)
}

func newStoreExportCmd(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "export",
		Short: "Write the whole store as YAML (to stdout, or -f FILE created 0600)",
		Long: `Writes nodes, groups, every node's boot state and phases, the nodes'
SSH host keys (private keys included: keep the file safe) and the cloud-init
records (secure parts and instance-ids included) as one YAML document that
'imgctl store import' reads into any backend.`,
		Example: "  imgctl store export -f backup.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var d *store.Dump
			err := g.withStore(cmd.Context(), func(s store.Store) (err error) {
				d, err = s.Export(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			b, err := yaml.Marshal(d)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if file == "" || file == "-" {
				_, err = g.stdout.Write(b)
				return err
			}
			if err := atomicfile.WriteFile(file, b, 0o600); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "exported %d nodes, %d boot states, %d host keys to %s\n", len(d.Inventory.Nodes), len(d.States), len(d.HostKeys), file)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "write to FILE instead of stdout")
	return c
}

func newStoreImportCmd(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "import -f FILE",
		Short: "Replace the inventory with an export's, and restore its boot states and host keys",
		Long: `Reads what 'imgctl store export' wrote. The inventory is replaced as a whole
(one locked write); boot states and host keys replace those of the same nodes.
Run it while no 'imgctl serve' uses this state directory: the boot service
owns the boot states while it runs.`,
		Example: "  imgctl --state /var/lib/imgctl-new store import -f backup.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = g.stdin
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			dec := yaml.NewDecoder(r)
			dec.KnownFields(true)
			var d store.Dump
			if err := dec.Decode(&d); err != nil {
				return fmt.Errorf("import %s: %w", orStdin(file), err)
			}
			err := g.withStore(cmd.Context(), func(s store.Store) error { return s.Import(cmd.Context(), &d) })
			if err == nil && !g.quiet {
				fmt.Fprintf(g.stderr, "imported %d nodes, %d boot states, %d host keys\n", len(d.Inventory.Nodes), len(d.States), len(d.HostKeys))
			}
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "read FILE instead of stdin")
	return c
}

func orStdin(file string) string {
	if file == "" || file == "-" {
		return "stdin"
	}
	return file
}
