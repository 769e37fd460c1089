package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/coredhcp/coredhcp/handler"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// exchange is one request's state, shared by the handlers of its chain.
type exchange struct {
	ctx    context.Context
	mac    net.HardwareAddr
	subnet *subnet
	node   inventory.Node
	known  bool // node is in the inventory with an address
	pooled bool // lease came from the discovery pool
	ip     netip.Addr
	drop   string // why no reply is sent (a metrics label), when none is
}

// reply runs the handler chain for req and returns the response, or nil.
func (s *Server) reply(ctx context.Context, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		s.metrics.dropped(dropNotBootRequest)
		return nil
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		if err := s.deps.Nodes.Release(ctx, req.ClientHWAddr); err != nil {
			s.log.Warn("release discovery lease", "mac", req.ClientHWAddr.String(), "err", err)
		}
		return nil
	default:
		s.metrics.dropped(dropMessageType)
		return nil
	}
	resp, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		return nil
	}
	x := &exchange{ctx: ctx, mac: req.ClientHWAddr}
	chain := []handler.Handler4{x.serverID(s), x.route(s), x.lease(s), x.pxe(s), x.finish(s)}
	for _, h := range chain {
		var stop bool
		if resp, stop = h(req, resp); stop {
			break
		}
	}
	if resp == nil {
		s.metrics.dropped(x.drop)
	}
	return resp
}

// serverID sets option 54 and drops REQUESTs meant for another server.
func (x *exchange) serverID(s *Server) handler.Handler4 {
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		me := net.IP(s.serverIP.AsSlice())
		if req.MessageType() == dhcpv4.MessageTypeRequest {
			if id := req.ServerIdentifier(); id != nil && !id.Equal(me) {
				x.drop = dropOtherServer
				return nil, true
			}
		}
		resp.UpdateOption(dhcpv4.OptServerIdentifier(me))
		resp.ServerIPAddr = me
		return resp, false
	}
}

// route picks the client's subnet: the relay's (giaddr) or the server's own.
// A relay on a segment not configured gets no answer.
func (x *exchange) route(s *Server) handler.Handler4 {
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		x.subnet = s.local
		if gi, ok := netip.AddrFromSlice(req.GatewayIPAddr.To4()); ok && !gi.IsUnspecified() {
			if x.subnet = s.subnetFor(gi); x.subnet == nil {
				s.log.Warn("relayed request from an unconfigured subnet dropped", "mac", x.mac.String(), "giaddr", gi, "xid", req.TransactionID.String())
				x.drop = dropUnknownRelay
				return nil, true
			}
		}
		return resp, false
	}
}

// lease finds the node and fills the address options; unknown MACs follow the
// policy.
func (x *exchange) lease(s *Server) handler.Handler4 {
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		n, err := s.deps.Nodes.NodeByMAC(x.ctx, x.mac)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("look up node", "mac", x.mac.String(), "err", err)
			x.drop = dropStore
			return nil, true
		}
		found := err == nil
		if found && n.IP != "" {
			x.node, x.known, x.ip = n, true, netip.MustParseAddr(n.IP)
			if x.subnet != nil && !x.subnet.prefix.Contains(x.ip) {
				if sn := s.subnetFor(x.ip); sn != nil && req.GatewayIPAddr.IsUnspecified() && x.subnet == s.local {
					x.subnet = sn // a directly attached second segment
				} else {
					s.log.Warn("node's address is not on the segment it asked from", "node", n.Name, "mac", x.mac.String(), "ip", x.ip, "subnet", x.subnet.prefix)
					x.drop = dropWrongSegment
					return nil, true
				}
			}
		} else if s.cfg.Unknown == PolicyDiscovery && x.subnet != nil && x.subnet.first.IsValid() {
			ip, err := s.deps.Nodes.Lease(x.ctx, store.LeaseRequest{MAC: x.mac, First: x.subnet.first, Last: x.subnet.last, TTL: s.cfg.DiscoveryLease})
			if err != nil {
				s.log.Warn("no discovery lease", "mac", x.mac.String(), "subnet", x.subnet.prefix, "err", err)
				x.drop = dropNoLease
				return nil, true
			}
			x.ip, x.pooled = ip, true
			if found {
				x.node = n
			}
			if !found {
				s.discovered(x.mac)
			}
		} else {
			if s.log.Enabled(x.ctx, slog.LevelDebug) {
				s.log.Debug("unknown MAC ignored", "mac", x.mac.String(), "xid", req.TransactionID.String())
			}
			x.drop = dropUnknownMAC
			return nil, true
		}
		if req.MessageType() == dhcpv4.MessageTypeRequest {
			want := req.RequestedIPAddress()
			if want == nil || want.IsUnspecified() {
				want = req.ClientIPAddr
			}
			if want != nil && !want.IsUnspecified() && !want.Equal(net.IP(x.ip.AsSlice())) {
				resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
				resp.YourIPAddr = net.IPv4zero
				resp.Options = dhcpv4.Options{}
				resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
				resp.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(s.serverIP.AsSlice())))
				s.log.Info("NAK: requested address is not the node's", "mac", x.mac.String(), "requested", want.String(), "ip", x.ip)
				return resp, true
			}
		}
		if req.MessageType() != dhcpv4.MessageTypeInform {
			resp.YourIPAddr = net.IP(x.ip.AsSlice())
			lt := s.cfg.LeaseTime
			if x.pooled {
				lt = s.cfg.DiscoveryLease
			}
			resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lt))
			resp.UpdateOption(dhcpv4.OptRenewTimeValue(lt / 2))
			resp.UpdateOption(dhcpv4.OptRebindingTimeValue(lt * 7 / 8))
		}
		x.addressOptions(resp)
		return resp, false
	}
}

// addressOptions sets mask, router, DNS, domain and hostname: the node's own
// values first, then its subnet's.
func (x *exchange) addressOptions(resp *dhcpv4.DHCPv4) {
	sn := x.subnet
	if sn == nil {
		sn = &subnet{prefix: netip.PrefixFrom(x.ip, 24).Masked()}
	}
	bits := sn.prefix.Bits()
	if b, ok := parseMask(x.node.Netmask); ok {
		bits = b
	}
	resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(bits, 32)))
	if gw, err := netip.ParseAddr(x.node.Gateway); err == nil {
		resp.UpdateOption(dhcpv4.OptRouter(net.IP(gw.AsSlice())))
	} else if sn.router.IsValid() {
		resp.UpdateOption(dhcpv4.OptRouter(net.IP(sn.router.AsSlice())))
	}
	var dns []net.IP
	for _, d := range x.node.DNS {
		if a, err := netip.ParseAddr(d); err == nil && a.Is4() {
			dns = append(dns, net.IP(a.AsSlice()))
		}
	}
	if len(dns) == 0 {
		for _, a := range sn.dns {
			dns = append(dns, net.IP(a.AsSlice()))
		}
	}
	if len(dns) > 0 {
		resp.UpdateOption(dhcpv4.OptDNS(dns...))
	}
	if d := firstNonEmpty(x.node.Domain, sn.domain); d != "" {
		resp.UpdateOption(dhcpv4.OptDomainName(d))
	}
	if x.node.Name != "" {
		resp.UpdateOption(dhcpv4.OptHostName(x.node.Name))
	}
}

// parseMask accepts "255.255.0.0", "/16" or "16".
func parseMask(m string) (int, bool) {
	if m == "" {
		return 0, false
	}
	if a, err := netip.ParseAddr(m); err == nil && a.Is4() {
		ones, bits := net.IPMask(a.AsSlice()).Size()
		return ones, bits == 32
	}
	b, err := strconv.Atoi(strings.TrimPrefix(m, "/"))
	return b, err == nil && b >= 0 && b <= 32
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// isIPXE tells iPXE (user class "iPXE", RFC 3004 or raw, or its option 175)
// from PXE firmware.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	return bytes.Contains(req.GetOneOption(dhcpv4.OptionUserClassInformation), []byte("iPXE")) ||
		req.Options.Has(dhcpv4.GenericOptionCode(175))
}

// isFirmware tells PXE or iPXE firmware from an operating system's client:
// firmware names itself (iPXE's user class or option 175, "PXEClient" vendor
// class) or states its architecture (option 93).
func isFirmware(req *dhcpv4.DHCPv4) bool {
	return isIPXE(req) || strings.HasPrefix(req.ClassIdentifier(), "PXEClient") || len(req.ClientArch()) > 0
}

// arch names the client's firmware architecture (RFC 4578 §2.1).
func arch(req *dhcpv4.DHCPv4) string {
	archs := req.ClientArch()
	if len(archs) == 0 {
		return bootspec.ArchBIOS
	}
	switch archs[0] {
	case iana.EFI_BC, iana.EFI_X86_64:
		return bootspec.ArchUEFIx64
	case iana.EFI_ARM64:
		return bootspec.ArchUEFIARM64
	case iana.INTEL_X86PC:
		return bootspec.ArchBIOS
	default:
		return archs[0].String()
	}
}

// pxe sets next-server and the boot file the resolver picks: the iPXE
// script URL for iPXE, otherwise the TFTP file for the firmware's
// architecture.
func (x *exchange) pxe(s *Server) handler.Handler4 {
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		resp.ServerIPAddr = net.IP(s.serverIP.AsSlice())
		c := bootspec.Client{MAC: x.mac, IP: x.ip, Arch: arch(req), IPXE: isIPXE(req)}
		bf := s.deps.Boot.BootFile(c)
		if c.IPXE {
			if bf.URL != "" {
				resp.BootFileName = ""
				if len(bf.URL) < 128 { // the BOOTP file field, for clients that read only that
					resp.BootFileName = bf.URL
				}
				resp.UpdateOption(dhcpv4.OptBootFileName(bf.URL))
			}
			// Encapsulated iPXE option 176 (no-pxedhcp) = 1 skips iPXE's ProxyDHCP wait.
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{176, 1, 1}))
			return resp, false
		}
		if bf.TFTP == "" {
			s.log.Debug("no boot file for client architecture", "mac", x.mac.String(), "arch", c.Arch)
			return resp, false
		}
		resp.BootFileName = bf.TFTP
		resp.UpdateOption(dhcpv4.OptBootFileName(bf.TFTP))
		resp.UpdateOption(dhcpv4.OptTFTPServerName(s.serverIP.String()))
		if strings.HasPrefix(req.ClassIdentifier(), "PXEClient") {
			// UEFI PXE classifies offers by it (EDK2 PxeBcDhcp4).
			resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		}
		return resp, false
	}
}

// finish sets the message type and records the node's state on ACK.
func (x *exchange) finish(s *Server) handler.Handler4 {
	return func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
			if s.log.Enabled(x.ctx, slog.LevelDebug) { // the arguments cost allocations on every offer
				s.log.Debug("offer", "mac", x.mac.String(), "ip", x.ip, "node", x.node.Name, "xid", req.TransactionID.String())
			}
		case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
			resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
			if x.node.Name != "" && s.deps.States != nil {
				file := resp.BootFileName
				if file == "" {
					file = resp.BootFileNameOption()
				}
				// A lease to boot firmware begins a boot; one to an OS client
				// (the initramfs, or a running node renewing) does not.
				state, detail := nodestate.DHCP, fmt.Sprintf("ack %s to %s, boot %s", x.ip, x.mac, file)
				if !isFirmware(req) {
					state, detail = nodestate.InitrdDHCP, fmt.Sprintf("ack %s to %s (OS client)", x.ip, x.mac)
				}
				if err := s.deps.States.Report(x.ctx, x.node.Name, nodestate.Report{State: state, Detail: detail}); err != nil {
					s.log.Warn("record state failed", "node", x.node.Name, "err", err)
				}
			}
			s.log.Info("ack", "node", x.node.Name, "mac", x.mac.String(), "ip", x.ip, "pool", x.pooled)
		}
		return resp, true
	}
}
