package dhcp

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// discovered queues mac to be recorded in the inventory as a discovered
// node, once per MAC per server. The reply does not wait for the write: a
// storm of new machines is recorded in a few batched updates by
// recordDiscovered, not one store write per packet.
func (s *Server) discovered(mac net.HardwareAddr) {
	key := mac.String()
	s.recMu.Lock()
	done := s.recorded[key]
	if !done {
		s.recorded[key] = true
		s.pending = append(s.pending, mac)
	}
	s.recMu.Unlock()
	if done {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// recordLoop records queued discoveries until ctx ends, then once more.
func (s *Server) recordLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			s.recordDiscovered(fctx)
			cancel()
			return
		case <-s.kick:
		}
		s.recordDiscovered(ctx)
	}
}

// recordDiscovered writes every queued MAC in one inventory update; on
// failure they are forgotten as recorded, so that their next packet tries again.
func (s *Server) recordDiscovered(ctx context.Context) {
	s.recMu.Lock()
	batch := s.pending
	s.pending = nil
	s.recMu.Unlock()
	if len(batch) == 0 {
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	var added []string
	err := s.deps.Nodes.Update(ctx, func(inv *inventory.Inventory) error {
		added = added[:0]
		for _, mac := range batch {
			if _, ok := inv.NodeByMAC(mac); ok {
				continue // someone added it meanwhile
			}
			name := "discovered-" + strings.ReplaceAll(mac.String(), ":", "")
			if err := inv.Put(inventory.Node{Name: name, MACs: []string{mac.String()}, Discovered: now}); err != nil {
				return err
			}
			added = append(added, name)
		}
		return nil
	})
	if err != nil {
		s.log.Error("record discovered MACs failed", "macs", len(batch), "err", err)
		s.recMu.Lock()
		for _, mac := range batch {
			delete(s.recorded, mac.String())
		}
		s.recMu.Unlock()
		return
	}
	for _, name := range added {
		s.log.Info("discovered", "node", name)
	}
}
