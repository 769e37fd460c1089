package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/dhcp"
	"github.com/imgctl/imgctl/bootsvc/httpboot"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nfs"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/ra"
	"github.com/imgctl/imgctl/bootsvc/tftp"
	"github.com/imgctl/imgctl/images"
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

// serve runs every enabled server until ctx ends or one fails.
func serve(ctx context.Context, g *globals, cfg config.Config, log *slog.Logger) error {
	invStore, err := inventory.OpenStore(g.inventoryPath(), log.With("server", "inventory"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(g.stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	states, err := nodestate.Open(g.stateDir, 0, log.With("server", "nodestate"))
	if err != nil {
		return err
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return invStore.Run(ctx) })
	eg.Go(func() error { return states.Run(ctx) })
	artifacts := images.NewStore(g.stateDir)

	var nfsSrv *nfs.Server
	if cfg.NFS.Enabled {
		if nfsSrv, err = nfs.New(cfg.NFS, nfs.Deps{StateDir: g.stateDir, Artifacts: artifacts, Log: log,
			Nodes: func() []*inventory.Node { return nodePtrs(invStore.Snapshot().Nodes()) }}); err != nil {
			return err
		}
		eg.Go(func() error { return nfsSrv.Run(ctx) })
	}
	if cfg.HTTP.Enabled {
		deps := httpboot.Deps{StateDir: g.stateDir, Artifacts: artifacts, States: states, Log: log,
			Nodes:  func() httpboot.Nodes { return nodeLookup{invStore.Snapshot()} },
			Reload: invStore.Reload}
		if nfsSrv != nil {
			deps.NFS = nfsSrv
		}
		h, err := httpboot.New(cfg.HTTP.Config, deps)
		if err != nil {
			return err
		}
		eg.Go(func() error { return h.Run(ctx) })
	}
	if cfg.DHCP.Enabled {
		d, err := dhcp.New(cfg.DHCP, dhcp.Deps{Inventory: invStore, States: states, Log: log})
		if err != nil {
			return err
		}
		eg.Go(func() error { return d.Run(ctx) })
	}
	if cfg.TFTP.Enabled {
		t, err := tftp.New(cfg.TFTP, tftp.Deps{Log: log})
		if err != nil {
			return err
		}
		eg.Go(func() error { return t.Run(ctx) })
	}
	if cfg.RA.Enabled {
		r, err := ra.New(cfg.RA, log)
		if err != nil {
			return err
		}
		eg.Go(func() error { return r.Run(ctx) })
	}
	log.Info("serving", "interface", cfg.Interface, "address", cfg.Address, "dhcp", cfg.DHCP.Enabled, "tftp", cfg.TFTP.Enabled,
		"http", cfg.HTTP.Enabled, "nfs", cfg.NFS.Enabled, "ra", cfg.RA.Enabled, "nodes", invStore.Snapshot().Len())
	// Servers return nil when ctx ends; the first error cancels ctx for all.
	err = eg.Wait()
	if err := states.Flush(); err != nil {
		log.Warn("flush node states", "err", err)
	}
	return err
}

// nodeLookup adapts an inventory snapshot to httpboot.Nodes.
type nodeLookup struct{ inv *inventory.Inventory }

func (l nodeLookup) Node(name string) (*inventory.Node, bool) { return ptr(l.inv.Node(name)) }

func (l nodeLookup) NodeByMAC(mac string) (*inventory.Node, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, false
	}
	return ptr(l.inv.NodeByMAC(hw))
}

func (l nodeLookup) NodeByIP(ip string) (*inventory.Node, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, false
	}
	return ptr(l.inv.NodeByIP(a))
}

func ptr(n inventory.Node, ok bool) (*inventory.Node, bool) {
	if !ok {
		return nil, false
	}
	return &n, true
}

func nodePtrs(nodes []inventory.Node) []*inventory.Node {
	out := make([]*inventory.Node, len(nodes))
	for i := range nodes {
		out[i] = &nodes[i]
	}
	return out
}
