package store

import (
	"net/netip"
	"sync"
	"time"
)

// Pool hands out discovery leases in memory; the file backend and Memory
// use it. A restart forgets them, which is fine for machines that are only
// being found: they ask again and get an address again.
type Pool struct {
	mu     sync.Mutex
	byMAC  map[string]poolLease
	byAddr map[netip.Addr]string
}

type poolLease struct {
	ip      netip.Addr
	expires time.Time
}

// Lease is Store.Lease at time now; taken reports addresses that belong to
// inventory nodes.
func (p *Pool) Lease(req LeaseRequest, now time.Time, taken func(netip.Addr) bool) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byMAC == nil {
		p.byMAC, p.byAddr = map[string]poolLease{}, map[netip.Addr]string{}
	}
	mac := req.MAC.String()
	if l, ok := p.byMAC[mac]; ok && !l.ip.Less(req.First) && !req.Last.Less(l.ip) {
		l.expires = now.Add(req.TTL)
		p.byMAC[mac] = l
		return l.ip, nil
	}
	for a := req.First; a.IsValid() && !req.Last.Less(a); a = a.Next() {
		if owner, ok := p.byAddr[a]; ok {
			if l := p.byMAC[owner]; now.Before(l.expires) {
				continue
			}
			delete(p.byMAC, owner)
			delete(p.byAddr, a)
		}
		if taken(a) {
			continue
		}
		if old, ok := p.byMAC[mac]; ok { // a lease in another range
			delete(p.byAddr, old.ip)
		}
		p.byMAC[mac] = poolLease{ip: a, expires: now.Add(req.TTL)}
		p.byAddr[a] = mac
		return a, nil
	}
	return netip.Addr{}, ErrPoolExhausted
}

// Release drops mac's lease, if any.
func (p *Pool) Release(mac string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.byMAC[mac]; ok {
		delete(p.byAddr, l.ip)
		delete(p.byMAC, mac)
	}
}
