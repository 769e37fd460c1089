// Package ra sends IPv6 router advertisements that configure nothing on the
// boot network. iPXE waits about 13 s for IPv6 autoconfiguration on every
// boot unless a router advertisement arrives; one with router lifetime 0, no
// prefix and neither the M nor the O flag ends that wait at once without
// giving any host an address or a default route. On a network with real IPv6
// routers leave it off: they own the advertisements there.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/imgctl/imgctl/internal/logging"
)

// Config is the "ra" section of the serve configuration.
type Config struct {
	Enabled   bool          `yaml:"enabled" json:"enabled"`
	Interface string        `yaml:"interface,omitempty" json:"interface,omitempty"` // "" = the boot interface
	Interval  time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`   // unsolicited advertisements; 0 = 10s
}

// Defaults returns the configuration with defaults filled in (disabled).
func Defaults() Config { return Config{Interval: 10 * time.Second} }

// ICMPv6 message types (RFC 4861).
const (
	typeRouterSolicitation  = 133
	typeRouterAdvertisement = 134
	optSourceLinkLayer      = 1
)

// Advertisement returns the ICMPv6 router advertisement message body
// (without the type, code and checksum, which icmp.Message adds): current
// hop limit unspecified, M and O clear, router lifetime, reachable time and
// retransmission timer 0, and one source link-layer address option.
func Advertisement(mac net.HardwareAddr) []byte {
	b := make([]byte, 12, 12+8)
	// b[0] hop limit 0, b[1] flags 0, b[2:4] router lifetime 0,
	// b[4:8] reachable time 0, b[8:12] retrans timer 0.
	if len(mac) == 6 {
		b = append(b, optSourceLinkLayer, 1) // length in units of 8 octets
		b = append(b, mac...)
	}
	return b
}

// Server advertises on one interface.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg; the interface is looked up when Run starts.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Interface == "" {
		return nil, errors.New("ra: no interface")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = Defaults().Interval
	}
	return &Server{cfg: cfg, log: logging.OrDiscard(log).With("server", "ra")}, nil
}

// Run advertises until ctx ends: at start, every Interval, and in answer to
// each router solicitation.
func (s *Server) Run(ctx context.Context) error {
	ifi, err := net.InterfaceByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	conn, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	defer conn.Close()
	pc := conn.IPv6PacketConn()
	// RFC 4861: hop limit 255, so receivers know the packet is on-link.
	if err := pc.SetMulticastHopLimit(255); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	if err := pc.SetHopLimit(255); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
		return fmt.Errorf("ra: join all-routers on %s: %w", ifi.Name, err)
	}
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := pc.SetICMPFilter(&filter); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: Advertisement(ifi.HardwareAddr)}}).Marshal(nil)
	if err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifi.Name}
	send := func(why string) {
		if _, err := pc.WriteTo(msg, nil, allNodes); err != nil {
			// Before the interface has its link-local address (DAD) sends fail; the next tick retries.
			s.log.Debug("advertisement not sent", "interface", ifi.Name, "why", why, "err", err)
		}
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		conn.SetReadDeadline(time.Now()) // unblocks ReadFrom
	}()
	solicited := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] == typeRouterSolicitation {
				s.log.Debug("router solicitation", "from", src)
				select {
				case solicited <- struct{}{}:
				default:
				}
			}
		}
	}()

	s.log.Info("advertising", "interface", ifi.Name, "interval", s.cfg.Interval, "router_lifetime", 0)
	// A few quick ones first: the link-local address may still be tentative.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	quick := 5
	send("start")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-solicited:
			send("solicited")
		case <-tick.C:
			send("periodic")
			if quick > 0 {
				if quick--; quick == 0 {
					tick.Reset(s.cfg.Interval)
				}
			}
		}
	}
}
