package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/config"
)

func addConfigCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the boot service configuration",
		Long: `The serve configuration is one YAML file (--config) over built-in defaults,
overridden by IMGCTL_<SECTION>_<KEY> environment variables (IMGCTL_DHCP_UNKNOWN)
and then by flags (--set dhcp.unknown=discovery).`,
		Example: "  imgctl config check --config /etc/imgctl/serve.yaml\n  imgctl config show -o json",
	}
	check := &configFlags{}
	checkCmd := &cobra.Command{
		Use:     "check",
		Short:   "Validate the effective configuration, reporting every problem",
		Example: "  imgctl config check --config serve.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := check.load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("config:\n%w", err)
			}
			if !g.quiet {
				fmt.Fprintln(g.stdout, "configuration ok")
			}
			return nil
		},
	}
	check.register(checkCmd)
	show := &configFlags{}
	showCmd := &cobra.Command{
		Use:     "show",
		Short:   "Print the effective configuration (secrets redacted)",
		Example: "  imgctl config show --config serve.yaml --set tftp.enabled=false\n  imgctl config show -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := show.load(cmd)
			if err != nil {
				return err
			}
			format := g.output
			if format == "text" || format == "" {
				format = "yaml"
			}
			p, err := g.printerFor(format)
			if err != nil {
				return err
			}
			return p.Value(cfg.Redacted(), func(io.Writer) error { return nil })
		},
	}
	show.register(showCmd)
	keysCmd := &cobra.Command{
		Use:     "keys",
		Short:   "List the settings --set and IMGCTL_* variables accept",
		Example: "  imgctl config keys",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, k := range config.Keys() {
				fmt.Fprintln(g.stdout, k)
			}
			return nil
		},
	}
	cmd.AddCommand(checkCmd, showCmd, keysCmd)
	root.AddCommand(cmd)
}
