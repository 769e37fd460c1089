package dhcp

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request gets no reply (label "reason" of imgctl_dhcp_drops_total).
const (
	dropMalformed      = "malformed"        // not a DHCP packet
	dropNotBootRequest = "not_boot_request" // not an Ethernet BOOTREQUEST
	dropMessageType    = "message_type"     // a type we do not answer
	dropOtherServer    = "other_server"     // a REQUEST for another server's offer
	dropUnknownRelay   = "unknown_relay"    // relayed from a subnet not configured
	dropStore          = "store_error"      // the node lookup failed
	dropWrongSegment   = "wrong_segment"    // the node's address is not on the asking segment
	dropNoLease        = "no_lease"         // the discovery pool is exhausted
	dropUnknownMAC     = "unknown_mac"      // not in the inventory, policy ignore
)

// metrics count replies by message type and drops by reason.
type metrics struct {
	replies *prometheus.CounterVec
	drops   *prometheus.CounterVec
}

// newMetrics registers the figures with reg; nil reg counts privately.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgctl_dhcp_replies_total", Help: "DHCP replies sent, by message type (offer, ack, nak).",
		}, []string{"type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgctl_dhcp_drops_total", Help: "DHCP requests answered with nothing, by reason.",
		}, []string{"reason"}),
	}
	for _, t := range []string{"offer", "ack", "nak"} {
		m.replies.WithLabelValues(t)
	}
	for _, r := range []string{dropMalformed, dropNotBootRequest, dropMessageType, dropOtherServer, dropUnknownRelay, dropStore, dropWrongSegment, dropNoLease, dropUnknownMAC} {
		m.drops.WithLabelValues(r) // every series from the start, so rates work from zero
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.replies, m.drops} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) replied(t dhcpv4.MessageType) {
	m.replies.WithLabelValues(strings.ToLower(strings.TrimPrefix(t.String(), "DHCP"))).Inc()
}

func (m *metrics) dropped(reason string) {
	if reason == "" {
		reason = "other"
	}
	m.drops.WithLabelValues(reason).Inc()
}
