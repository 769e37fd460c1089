package bootspec

import (
	"fmt"
	"strconv"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// Tree is how tree-mode nodes reach the coordinator (bootsvc/dist).
type Tree struct {
	Coordinator string        // base URL of the coordinator's API
	PeerPort    int           // port nodes serve pieces on
	Stall       time.Duration // no bytes for this long: ask for another source
	SeedFor     time.Duration // how long a booted node keeps serving; <0 = not at all
}

// distribution adds the kernel arguments of the node's distribution mode:
// none for http (the default), the coordinator for tree.
func (r *Resolver) distribution(spec *Spec, n inventory.Node) error {
	switch n.Distribution {
	case "", inventory.DistHTTP:
		return nil
	case inventory.DistTree:
		t := r.cfg.Tree
		if t == nil {
			return fmt.Errorf("node %s wants distribution tree but the coordinator is not running (HTTP server off)", n.Name)
		}
		seed := int(t.SeedFor.Seconds())
		if t.SeedFor < 0 {
			seed = 0
		}
		spec.Args = append(spec.Args,
			"imgctl.dist=tree",
			"imgctl.coordinator="+t.Coordinator,
			"imgctl.peerport="+strconv.Itoa(t.PeerPort),
			"imgctl.stall="+strconv.Itoa(int(t.Stall.Seconds())),
			"imgctl.seedfor="+strconv.Itoa(seed))
		return nil
	case inventory.DistMulticast:
		return r.multicast(spec, n)
	default:
		return fmt.Errorf("node %s: distribution %q: not implemented", n.Name, n.Distribution)
	}
}
