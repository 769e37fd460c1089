package bootsvc

import (
	"log/slog"
	"net/netip"
	"strings"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/images"
)

// treeConfig is what the resolver puts on tree nodes' command lines; nil
// (tree nodes refused) when the HTTP server, which carries the coordinator,
// is off.
func treeConfig(cfg config.Config, publicURL string) *bootspec.Tree {
	if !cfg.HTTP.Enabled {
		return nil
	}
	d := cfg.Dist.WithDefaults()
	return &bootspec.Tree{Coordinator: strings.TrimRight(publicURL, "/") + dist.Prefix, PeerPort: d.PeerPort, Stall: d.Stall, SeedFor: d.SeedFor}
}

// multicastSenders sends from the boot interface and address serve already
// uses (cfg resolved): the nodes in multicast mode sit on that network.
// Without an IPv4 boot address the senders refuse every join (the node
// then repairs everything over HTTP), saying why.
func multicastSenders(cfg config.Config, artifacts *images.Store, log *slog.Logger) *dist.Multicast {
	addr, _ := netip.ParseAddr(cfg.Address)
	return dist.NewMulticast(dist.MulticastDeps{Interface: cfg.Interface, Address: addr, Artifacts: artifacts, Log: log})
}
