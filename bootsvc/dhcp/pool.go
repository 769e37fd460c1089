package dhcp

import (
	"context"
	"strings"
	"sync"
	"time"

	"net"
	"net/netip"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// pool hands out short discovery leases to unknown MACs. Leases live in
// memory only: a restart hands out addresses again, which is fine for
// machines that are only being found.
type pool struct {
	mu     sync.Mutex
	ttl    time.Duration
	byMAC  map[string]poolLease
	byAddr map[netip.Addr]string
}

type poolLease struct {
	ip      netip.Addr
	expires time.Time
}

func newPool(_ []*subnet, ttl time.Duration) *pool {
	return &pool{ttl: ttl, byMAC: map[string]poolLease{}, byAddr: map[netip.Addr]string{}}
}

// lease returns mac's address in sn's pool, reusing its current lease, else
// the first address neither leased nor owned by an inventory node.
func (p *pool) lease(sn *subnet, mac string, inv *inventory.Inventory, now time.Time) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.byMAC[mac]; ok && sn.prefix.Contains(l.ip) {
		l.expires = now.Add(p.ttl)
		p.byMAC[mac] = l
		return l.ip, true
	}
	for a := sn.first; a.IsValid() && !sn.last.Less(a); a = a.Next() {
		if owner, ok := p.byAddr[a]; ok {
			if l := p.byMAC[owner]; now.Before(l.expires) {
				continue
			}
			delete(p.byMAC, owner)
			delete(p.byAddr, a)
		}
		if _, taken := inv.NodeByIP(a); taken {
			continue
		}
		p.byMAC[mac] = poolLease{ip: a, expires: now.Add(p.ttl)}
		p.byAddr[a] = mac
		return a, true
	}
	return netip.Addr{}, false
}

func (p *pool) release(mac string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.byMAC[mac]; ok {
		delete(p.byAddr, l.ip)
		delete(p.byMAC, mac)
	}
}

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
	err := s.deps.Inventory.Update(ctx, func(inv *inventory.Inventory) error {
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
