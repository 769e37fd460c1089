package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/bmc"
)

// powerFlags are shared by every power subcommand.
type powerFlags struct {
	fanout  int
	timeout time.Duration
	secrets string
	cipher  int // IPMI cipher suite; 0 = let ipmitool negotiate
}

func addPowerCommands(root *cobra.Command, g *globals) {
	pf := &powerFlags{}
	cmd := &cobra.Command{
		Use:   "power",
		Short: "Power nodes on, off, cycle, reset, or network-boot them through their BMCs",
		Long: `Drives each node's BMC (Redfish or IPMI lanplus, per inventory bmc.protocol;
auto probes /redfish/v1 first) in parallel, at most --fanout at a time, each node
bounded by --timeout. Prints one row per node; exits non-zero if any node failed.`,
		Example: `  imgctl power status 'nid[001-064]'
  imgctl power pxe nid007 --bmc-secrets /etc/imgctl/bmc-secrets.yaml`,
	}
	cmd.PersistentFlags().IntVar(&pf.fanout, "fanout", 64, "BMCs contacted at once")
	cmd.PersistentFlags().DurationVar(&pf.timeout, "timeout", 60*time.Second, "per-node time limit")
	cmd.PersistentFlags().IntVar(&pf.cipher, "ipmi-cipher", 0, "IPMI 2.0 cipher suite (e.g. 3 or 17); 0 negotiates, which costs seconds per call on BMCs without the cipher-suite lookup")
	cmd.PersistentFlags().StringVar(&pf.secrets, "bmc-secrets", "", "YAML file (mode 0600) of node or group name → user, password")
	for _, a := range []struct {
		act   bmc.Action
		short string
	}{
		{bmc.On, "Power nodes on"},
		{bmc.Off, "Power nodes off (hard)"},
		{bmc.Soft, "Shut nodes down gracefully (ACPI)"},
		{bmc.Cycle, "Power-cycle nodes"},
		{bmc.Reset, "Hard-reset nodes"},
		{bmc.Status, "Show nodes' power state"},
		{bmc.PXE, "Set a one-time network boot, then reset (or power on if off)"},
	} {
		cmd.AddCommand(newPowerActionCmd(g, pf, a.act, a.short))
	}
	root.AddCommand(cmd)
}

func newPowerActionCmd(g *globals, pf *powerFlags, act bmc.Action, short string) *cobra.Command {
	return &cobra.Command{
		Use:     string(act) + " NODES",
		Short:   short,
		Example: fmt.Sprintf("  imgctl power %s 'nid[001-016]' --fanout 8 --timeout 30s -o json", act),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.printer(); err != nil {
				return err // a bad -o fails before any BMC is touched
			}
			var secrets bmc.Secrets
			if pf.secrets != "" {
				var err error
				if secrets, err = bmc.LoadSecrets(pf.secrets); err != nil {
					return err
				}
			}
			targets, err := bmcTargets(cmd.Context(), g, args[0], secrets)
			if err != nil {
				return err
			}
			for i := range targets {
				targets[i].CipherSuite = pf.cipher
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "power %s: %d nodes, fan-out %d\n", act, len(targets), pf.fanout)
			}
			res := bmc.Run(cmd.Context(), g.logger(), targets, act, pf.fanout, pf.timeout)
			return printBMCResults(g, res)
		},
	}
}

// printBMCResults prints the per-node table and returns errSilent if any failed.
func printBMCResults(g *globals, res []bmc.Result) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	failed := 0
	rows := make([][]string, 0, len(res))
	for _, r := range res {
		status, detail := "ok", r.Output
		if !r.OK {
			status, detail = "FAILED", r.Error
			failed++
		}
		rows = append(rows, []string{r.Node, r.BMC, status, strings.ReplaceAll(detail, "\n", " "), strconv.FormatFloat(r.Seconds, 'f', 1, 64)})
	}
	if err := p.Table(res, []string{"NODE", "BMC", "STATUS", "DETAIL", "SECONDS"}, rows); err != nil {
		return err
	}
	if failed > 0 {
		return errSilent
	}
	return nil
}
