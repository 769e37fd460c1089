package dhcp

import (
	"context"
	"strings"
	"time"

	"net"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// discovered records mac in the inventory as a discovered node, once per MAC
// per server (the file write is the expensive part).
func (s *Server) discovered(ctx context.Context, mac net.HardwareAddr) {
	key := mac.String()
	s.recMu.Lock()
	done := s.recorded[key]
	s.recorded[key] = true
	s.recMu.Unlock()
	if done {
		return
	}
	name := "discovered-" + strings.ReplaceAll(key, ":", "")
	err := s.deps.Nodes.Update(ctx, func(inv *inventory.Inventory) error {
		if _, ok := inv.NodeByMAC(mac); ok {
			return nil // someone added it meanwhile
		}
		return inv.Put(inventory.Node{Name: name, MACs: []string{key}, Discovered: time.Now().UTC().Truncate(time.Second)})
	})
	if err != nil {
		s.log.Error("record discovered MAC failed", "mac", key, "err", err)
		s.recMu.Lock()
		delete(s.recorded, key)
		s.recMu.Unlock()
		return
	}
	s.log.Info("discovered", "mac", key, "node", name)
}
