package bootspec

import (
	"context"
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
)

// WithCloudInit makes the resolver add the cloud-init NoCloud seed to the
// command line of nodes that have cloud-init data (cloudinit.Seeded); a
// store.Store is a Getter. It returns r.
func (r *Resolver) WithCloudInit(g cloudinit.Getter) *Resolver {
	r.cloudInit = g
	return r
}

// CloudInitSeed is the seed argument for a node's token. The trailing slash
// is kept: cloud-init 22.4 appends the file names to it as they are. The
// ';' needs no quoting: iPXE splits commands only on a ';' standing alone as
// a word (and starts a comment only at a word beginning with '#'), the
// kernel passes it through, and cloud-init parses ds=… itself.
func CloudInitSeed(publicURL, token string) string {
	return "ds=nocloud-net;s=" + publicURL + "/cloud-init/" + token + "/"
}

// addCloudInit appends the seed to spec's arguments when the node is seeded.
func (r *Resolver) addCloudInit(ctx context.Context, spec *Spec) error {
	if r.cloudInit == nil || spec.Token == "" {
		return nil
	}
	on, err := cloudinit.Seeded(ctx, r.cloudInit, spec.Node)
	if err != nil {
		return fmt.Errorf("node %s: cloud-init: %w", spec.Node.Name, err)
	}
	if on {
		spec.Args = append(spec.Args, CloudInitSeed(r.cfg.PublicURL, spec.Token))
	}
	return nil
}
