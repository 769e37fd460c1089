// Package dhcp is the boot service's DHCPv4 server: static leases from the
// inventory, PXE boot files by client architecture, the HTTP script URL for
// iPXE, and an optional discovery pool for unknown MACs.
//
// It embeds CoreDHCP's request model — a chain of coredhcp handler.Handler4
// functions, each able to edit the response or stop the chain — but not
// CoreDHCP's server and plugin registry: plugins.RegisterPlugin keeps its
// plugins in package globals and panics when a name is registered twice, so a
// process (tests, benchmarks, `imgctl serve` reloading) could build only one
// server. Here every Server builds its own chain, per request, from closures
// over its own state, and reads and writes packets on an insomniacslk/dhcp
// server4 socket (SO_BINDTODEVICE, SO_BROADCAST). Replies are routed as
// RFC 2131 §4.1 says: to the relay (giaddr) on the server port, to ciaddr
// when the client has one, else broadcast.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/logging"
)

// Nodes is what the server needs of the store (a store.Store satisfies it):
// node lookups, recording discovered MACs, and discovery leases.
type Nodes interface {
	NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error)
	Update(ctx context.Context, fn func(*inventory.Inventory) error) error
	Lease(ctx context.Context, req store.LeaseRequest) (netip.Addr, error)
	Release(ctx context.Context, mac net.HardwareAddr) error
}

// Booter picks what a booting machine is handed; *bootspec.Resolver
// satisfies it.
type Booter interface {
	BootFile(c bootspec.Client) bootspec.BootFile
}

// StateRecorder records a node's boot state ("dhcp" here); the store
// satisfies it. Errors are logged, never fatal.
type StateRecorder interface {
	Report(ctx context.Context, node string, r nodestate.Report) error
}

// Deps are the server's collaborators.
type Deps struct {
	Nodes  Nodes         // required
	Boot   Booter        // required
	States StateRecorder // nil: states are not recorded
	Log    *slog.Logger  // nil: discard
	// Conn, when set, is used instead of opening the configured port (tests).
	// The server closes it when Run returns.
	Conn net.PacketConn
	// Registry, when set, gets the server's Prometheus figures (metrics.go).
	Registry prometheus.Registerer
}

// Server answers DHCPv4 requests. Run it once.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	serverIP netip.Addr
	subnets  []*subnet
	local    *subnet // the subnet the server's own address is in (nil if none)
	bad      limiter // rate-limits malformed-packet log lines
	metrics  *metrics

	recMu    sync.Mutex
	recorded map[string]bool    // MACs written (or queued) to the inventory as discovered
	pending  []net.HardwareAddr // queued, not written yet
	kick     chan struct{}      // wakes recordLoop
}

// New checks cfg and resolves the server address. Nothing is opened yet.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Nodes == nil || deps.Boot == nil {
		return nil, errors.New("dhcp: Nodes and Boot are required")
	}
	s := &Server{cfg: cfg, deps: deps, log: logging.OrDiscard(deps.Log).With("server", "dhcp"), recorded: map[string]bool{}, kick: make(chan struct{}, 1)}
	var err error
	if s.serverIP, err = resolveServerIP(cfg); err != nil {
		return nil, err
	}
	for _, sc := range cfg.Subnets {
		sn, _ := sc.parse() // Validate checked it
		s.subnets = append(s.subnets, sn)
	}
	if len(s.subnets) == 0 {
		sn, err := interfaceSubnet(cfg.Interface, s.serverIP)
		if err != nil {
			return nil, err
		}
		s.subnets = append(s.subnets, sn)
	}
	s.local = s.subnetFor(s.serverIP)
	if s.metrics, err = newMetrics(deps.Registry); err != nil {
		return nil, err
	}
	return s, nil
}

// ServerIP is the address the server identifies itself with.
func (s *Server) ServerIP() netip.Addr { return s.serverIP }

// Run serves until ctx ends. It returns nil on a clean stop.
func (s *Server) Run(ctx context.Context) error {
	conn := s.deps.Conn
	if conn == nil {
		c, err := server4.NewIPv4UDPConn(s.cfg.Interface, &net.UDPAddr{Port: s.cfg.Port})
		if err != nil {
			return fmt.Errorf("dhcp: listen on %q port %d: %w", s.cfg.Interface, s.cfg.Port, err)
		}
		conn = c
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	recorded := make(chan struct{})
	go func() { defer close(recorded); s.recordLoop(ctx) }()
	defer func() { <-recorded }()
	s.log.Info("listening", "interface", s.cfg.Interface, "port", s.cfg.Port, "server_ip", s.serverIP, "unknown", s.cfg.Unknown)
	if uc, ok := conn.(*net.UDPConn); ok {
		return s.serveBatched(ctx, uc)
	}
	buf := make([]byte, 65536)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dhcp: read: %w", err)
		}
		resp, dst := s.Handle(ctx, buf[:n], peer)
		if resp == nil {
			continue
		}
		if _, err := conn.WriteTo(resp, dst); err != nil {
			s.log.Warn("send reply failed", "to", dst.String(), "err", err)
		}
	}
}

// Handle answers one packet read from peer: the reply's bytes and where to
// send them, or nil for no reply. Malformed packets are logged (rate-limited)
// and dropped; Handle never panics on any input.
func (s *Server) Handle(ctx context.Context, pkt []byte, peer net.Addr) (out []byte, dst net.Addr) {
	req, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		if s.bad.allow() {
			s.log.Warn("malformed DHCP packet dropped", "peer", addrString(peer), "len", len(pkt), "err", err)
		}
		s.metrics.dropped(dropMalformed)
		return nil, nil
	}
	resp := s.reply(ctx, req)
	if resp == nil {
		return nil, nil
	}
	s.metrics.replied(resp.MessageType())
	return resp.ToBytes(), replyAddr(req, resp)
}

// replyAddr routes a reply (RFC 2131 §4.1): relay first, then a configured
// client, then broadcast. Unicast to yiaddr before the client has the address
// would need an ARP entry; broadcast reaches it without one.
func replyAddr(req, resp *dhcpv4.DHCPv4) net.Addr {
	switch {
	case !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil:
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	case req.ClientIPAddr != nil && !req.ClientIPAddr.IsUnspecified():
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	default:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// limiter allows one event per second, so a packet flood cannot flood the log.
type limiter struct {
	mu   sync.Mutex
	last time.Time
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= time.Second {
		l.last = now
		return true
	}
	return false
}

func (s *Server) subnetFor(a netip.Addr) *subnet {
	for _, sn := range s.subnets {
		if sn.prefix.Contains(a) {
			return sn
		}
	}
	return nil
}
