// Package bootsvc composes the boot service: it runs the enabled protocol
// servers (DHCP, TFTP, HTTP, NFS, router advertisements) over one store and
// one boot resolver until the context ends or one of them fails. `imgctl
// serve` calls Serve; so do `imgctl vm boot` (through `imgctl serve` in the
// VM's namespace) and the tests.
package bootsvc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/imgctl/imgctl/bootsvc/bootmetrics"
	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/dhcp"
	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/httpboot"
	"github.com/imgctl/imgctl/bootsvc/nfs"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/ra"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/tftp"
	"github.com/imgctl/imgctl/bootsvc/ui"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// Deps are what the boot service runs on.
type Deps struct {
	StateDir  string        // required: artifacts, overlays' cache, the token secret
	Store     store.Store   // required; the caller opens and closes it
	Artifacts *images.Store // nil: images.NewStore(StateDir)
	// Reload, if set, is offered as the admin API's reload (the file backend
	// rereads nodes.yaml).
	Reload func(ctx context.Context) error
	Log    *slog.Logger // nil: discard
}

// Serve runs every server cfg enables until ctx ends (nil) or one fails (its
// error); the first failure stops the others.
func Serve(ctx context.Context, cfg config.Config, deps Deps) error {
	if deps.StateDir == "" || deps.Store == nil {
		return errors.New("boot service: StateDir and Store are required")
	}
	log := logging.OrDiscard(deps.Log)
	artifacts := deps.Artifacts
	if artifacts == nil {
		artifacts = images.NewStore(deps.StateDir)
	}
	eg, ctx := errgroup.WithContext(ctx)
	// One registry for every server's figures; the HTTP server serves it at /metrics.
	reg := prometheus.NewRegistry()

	httpCfg := cfg.HTTP.Config.WithDefaults(deps.StateDir)
	var tokens *nodetoken.Tokens
	if cfg.HTTP.Enabled {
		var err error
		if tokens, err = nodetoken.LoadSecret(httpCfg.TokenSecret); err != nil {
			return err
		}
	}
	var roots bootspec.NFSRoots
	if cfg.NFS.Enabled {
		roots = nfs.NewExports(cfg.NFS)
	}
	boot := bootspec.New(bootspec.Config{
		PublicURL: httpCfg.PublicURL, Console: httpCfg.Console, ScriptURL: cfg.DHCP.ScriptURL,
		Loaders: cfg.DHCP.BootFiles.Loaders(), Tree: treeConfig(cfg, httpCfg.PublicURL),
	}, deps.Store, artifacts, roots, tokens).WithCloudInit(deps.Store)
	if cfg.NFS.Enabled {
		nfsSrv, err := nfs.New(cfg.NFS, nfs.Deps{StateDir: deps.StateDir, Boot: boot, Log: log})
		if err != nil {
			return err
		}
		eg.Go(func() error { return nfsSrv.Run(ctx) })
	}
	if cfg.HTTP.Enabled {
		dash, err := dashboard(cfg, deps.Store, artifacts, log)
		if err != nil {
			return err
		}
		coord := dist.New(cfg.Dist, log, nil)
		distState := filepath.Join(deps.StateDir, dist.StateFile)
		if _, err := coord.Restore(distState); err != nil {
			// Not fatal: the agents re-join (resume) with what they hold.
			log.Warn("tree transfers not restored", "err", err)
		}
		eg.Go(func() error { return coord.Persist(ctx, distState) })
		mcast := multicastSenders(cfg, artifacts, log)
		eg.Go(func() error { return mcast.Run(ctx) })
		h, err := httpboot.New(httpCfg, httpboot.Deps{StateDir: deps.StateDir, Store: deps.Store, Boot: boot, Tokens: tokens,
			Artifacts: artifacts, Reload: deps.Reload, Log: log, CloudInit: deps.Store, UI: dash, Registry: reg,
			Mounts: map[string]http.Handler{dist.Prefix: dist.NewAPI(coord, deps.Store, tokens, log).ServePieceTables(artifacts).Handler(),
				dist.MulticastPrefix: dist.NewMulticastAPI(mcast, deps.Store, tokens, log).Handler()},
			Collectors: []prometheus.Collector{coord.Collector(), mcast.Collector()}})
		if err != nil {
			return err
		}
		eg.Go(func() error { return h.Run(ctx) })
		bm, err := bootmetrics.New(reg, deps.Store, artifacts)
		if err != nil {
			return err
		}
		eg.Go(func() error { return bm.Run(ctx) })
	}
	if cfg.DHCP.Enabled {
		d, err := dhcp.New(cfg.DHCP, dhcp.Deps{Nodes: deps.Store, Boot: boot, States: deps.Store, Log: log, Registry: reg})
		if err != nil {
			return err
		}
		eg.Go(func() error { return d.Run(ctx) })
	}
	if cfg.TFTP.Enabled {
		t, err := tftp.New(cfg.TFTP, tftp.Deps{Log: log, Registry: reg})
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
	nodes := 0
	if inv, err := deps.Store.Snapshot(ctx); err == nil {
		nodes = inv.Len()
	}
	log.Info("serving", "interface", cfg.Interface, "address", cfg.Address, "dhcp", cfg.DHCP.Enabled, "tftp", cfg.TFTP.Enabled,
		"http", cfg.HTTP.Enabled, "nfs", cfg.NFS.Enabled, "ra", cfg.RA.Enabled, "nodes", nodes)
	// Servers return nil when ctx ends; the first error cancels ctx for all.
	return eg.Wait()
}

// dashboard is the /ui handler, or nil when no token would let anyone in.
func dashboard(cfg config.Config, st store.Store, artifacts *images.Store, log *slog.Logger) (http.Handler, error) {
	if !cfg.UIEnabled() {
		return nil, nil
	}
	return ui.New(ui.Config{AdminToken: cfg.HTTP.AdminToken, ViewerToken: cfg.HTTP.ViewerToken},
		ui.Deps{Store: st, Artifacts: artifacts, Log: log})
}
