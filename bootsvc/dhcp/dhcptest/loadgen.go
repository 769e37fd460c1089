// Package dhcptest drives many DHCP exchanges at once from a client network
// namespace, for load tests and benchmarks of any DHCP server.
package dhcptest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/imgctl/imgctl/internal/netns"
)

// Loadgen sends from one client socket (port 68 on one interface in the
// namespace) and hands each reply to the exchange waiting on its xid.
type Loadgen struct {
	conn    net.PacketConn
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	// Tries and Wait bound each Ask: attempts, and how long each waits.
	Tries int
	Wait  time.Duration
}

// New opens the client socket on ifname inside ns; it closes when t ends.
func New(t testing.TB, ns *netns.NS, ifname string) *Loadgen {
	t.Helper()
	var conn net.PacketConn
	if err := ns.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &Loadgen{conn: conn, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, Tries: 3, Wait: time.Second}
	go l.dispatch()
	return l
}

func (l *Loadgen) dispatch() {
	buf := make([]byte, 1500)
	for {
		n, _, err := l.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		l.mu.Lock()
		ch := l.waiting[m.TransactionID]
		l.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// Ask broadcasts m and waits for the reply of type want, resending up to
// Tries times.
func (l *Loadgen) Ask(ctx context.Context, m *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	l.mu.Lock()
	l.waiting[m.TransactionID] = ch
	l.mu.Unlock()
	defer func() { l.mu.Lock(); delete(l.waiting, m.TransactionID); l.mu.Unlock() }()
	pkt := m.ToBytes()
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	for try := 0; try < l.Tries; try++ {
		if _, err := l.conn.WriteTo(pkt, dst); err != nil {
			return nil, err
		}
		timeout := time.After(l.Wait)
	wait:
		for {
			select {
			case r := <-ch:
				if r.MessageType() == want {
					return r, nil
				}
			case <-timeout:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return nil, fmt.Errorf("no %s for %s", want, m.ClientHWAddr)
}

// DORA runs a full DISCOVER/OFFER/REQUEST/ACK for mac, with mods (e.g. a
// user class) on both requests, and returns the ACK.
func (l *Loadgen) DORA(ctx context.Context, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	d, err := dhcpv4.NewDiscovery(mac, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		return nil, err
	}
	offer, err := l.Ask(ctx, d, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		return nil, err
	}
	return l.Ask(ctx, req, dhcpv4.MessageTypeAck)
}

// SetReadBuffer raises the client socket's receive buffer past rmem_max (as
// root): one socket stands in for thousands of clients, and replies it drops
// would be counted against the server.
func (l *Loadgen) SetReadBuffer(bytes int) error {
	sc, ok := l.conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("client socket %T has no file descriptor", l.conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, bytes)
	}); err != nil {
		return err
	}
	return serr
}
