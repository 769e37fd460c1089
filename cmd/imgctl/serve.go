package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc"
	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
)

// configFlags locate and override the serve configuration.
type configFlags struct {
	file      string
	sets      []string
	iface     string
	address   string
	switches  map[string]*bool // --dhcp, --tftp, --http, --nfs, --ra
	switchSet []string
}

func (f *configFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.file, "config", "c", os.Getenv("IMGCTL_CONFIG"), "serve configuration file (YAML) [$IMGCTL_CONFIG]")
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override a setting KEY=VALUE, e.g. dhcp.unknown=discovery (repeatable; see 'imgctl config keys')")
	c.Flags().StringVar(&f.iface, "interface", "", "boot interface (default: the first non-loopback one with IPv4)")
	c.Flags().StringVar(&f.address, "address", "", "boot server IPv4 address (default: the interface's first)")
	f.switches = map[string]*bool{}
	for _, s := range []string{"dhcp", "tftp", "http", "nfs", "ra"} {
		f.switches[s] = c.Flags().Bool(s, false, "enable or disable the "+s+" server (--"+s+"=false)")
	}
}

// load builds the effective configuration: file < IMGCTL_* < flags, resolved.
func (f *configFlags) load(c *cobra.Command) (config.Config, error) {
	sets := append([]string(nil), f.sets...)
	if f.iface != "" {
		sets = append(sets, "interface="+f.iface)
	}
	if f.address != "" {
		sets = append(sets, "address="+f.address)
	}
	for name, v := range f.switches {
		if c.Flags().Changed(name) {
			sets = append(sets, fmt.Sprintf("%s.enabled=%t", name, *v))
		}
	}
	cfg, err := config.Load(f.file, os.Environ(), sets)
	if err != nil {
		return cfg, err
	}
	if err := cfg.Resolve(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func addServeCommand(root *cobra.Command, g *globals) {
	f := &configFlags{}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the boot service: DHCP, TFTP, HTTP (and NFS) in one process",
		Long: `Serves everything a node needs to network-boot, from the inventory and the
artifact store in the state directory. With no configuration it runs DHCP (for
inventory MACs only), TFTP and HTTP on the first non-loopback interface.
Stops every server gracefully on SIGINT/SIGTERM or when one of them fails.`,
		Example: `  imgctl serve
  imgctl serve --config /etc/imgctl/serve.yaml
  imgctl serve --interface br0 --set dhcp.unknown=discovery --nfs=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("config:\n%w", err)
			}
			return serve(cmd.Context(), g, cfg, g.logger())
		},
	}
	f.register(c)
	root.AddCommand(c)
}

// serve runs the boot service on its store until ctx ends or a server fails:
// --store, else the configuration's store.url, else the state directory's
// file store, whose boot states this process then owns.
func serve(ctx context.Context, g *globals, cfg config.Config, log *slog.Logger) error {
	url := g.store
	if url == "" {
		url = cfg.Store.URL
	}
	st, err := g.openStoreAt(ctx, url, true)
	if err != nil {
		return err
	}
	deps := bootsvc.Deps{StateDir: g.stateDir, Store: st, Log: log}
	if fs, ok := st.(*filestore.Store); ok {
		deps.Reload = fs.Reload
	}
	err = bootsvc.Serve(ctx, cfg, deps)
	if cerr := st.Close(); cerr != nil {
		log.Warn("close store", "err", cerr)
	}
	return err
}
