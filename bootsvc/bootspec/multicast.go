package bootspec

import (
	"fmt"
	"strconv"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// multicast adds what a multicast-mode node's agent needs: the group and
// port to join, and the API (beside the tree coordinator's) it announces
// itself and reports to; the image, the manifest and the repair source are
// the live root's own arguments. The rate stays on the server: only the
// sender paces.
func (r *Resolver) multicast(spec *Spec, n inventory.Node) error {
	t := r.cfg.Tree
	if t == nil {
		return fmt.Errorf("node %s wants distribution multicast but the boot service's HTTP server (which runs the senders' API) is off", n.Name)
	}
	m := n.Multicast
	if m == nil || m.Group == "" {
		return fmt.Errorf("node %s: distribution multicast without multicast.group", n.Name)
	}
	port := m.Port
	if port == 0 {
		port = inventory.DefaultMulticastPort
	}
	spec.Args = append(spec.Args,
		"imgctl.dist=multicast",
		"imgctl.coordinator="+t.Coordinator,
		"imgctl.mcast_group="+m.Group,
		"imgctl.mcast_port="+strconv.Itoa(port),
		"imgctl.stall="+strconv.Itoa(int(t.Stall.Seconds())))
	return nil
}
