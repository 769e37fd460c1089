package bootsvc

import (
	"strings"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/config"
	"github.com/imgctl/imgctl/bootsvc/dist"
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
