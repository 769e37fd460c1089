package dhcp

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, _, _ := testServer(t, nil)
	var err error
	if s.metrics, err = newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		mac  string
		typ  dhcpv4.MessageType
		mods []dhcpv4.Modifier
	}{
		{"02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, nil},
		{"02:41:00:00:00:03", dhcpv4.MessageTypeDiscover, nil},
		{"02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 41, 0, 11}))}},
		{"02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 41, 0, 99}))}},
		{"02:41:00:00:00:02", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{10, 41, 9, 1})}},
		{"02:41:00:00:00:01", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{10, 41, 2, 1})}},
		{"02:41:00:00:00:99", dhcpv4.MessageTypeDiscover, nil},
		{"02:41:00:00:00:01", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 41, 0, 9}))}},
		{"02:41:00:00:00:01", dhcpv4.MessageTypeRelease, nil}, // handled, not a drop
	} {
		req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mustMAC(p.mac)), dhcpv4.WithMessageType(p.typ)}, p.mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		s.Handle(context.Background(), req.ToBytes(), nil)
	}
	s.Handle(context.Background(), []byte("not dhcp"), nil)
	got := map[string]float64{}
	for _, l := range []string{"offer", "ack", "nak"} {
		got["reply "+l] = value(t, s.metrics.replies.WithLabelValues(l))
	}
	for _, r := range []string{dropMalformed, dropUnknownRelay, dropWrongSegment, dropUnknownMAC, dropOtherServer, dropNoLease} {
		got["drop "+r] = value(t, s.metrics.drops.WithLabelValues(r))
	}
	want := map[string]float64{"reply offer": 2, "reply ack": 1, "reply nak": 1, "drop malformed": 1, "drop unknown_relay": 1,
		"drop wrong_segment": 1, "drop unknown_mac": 1, "drop other_server": 1, "drop no_lease": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("counters (-want +got):\n%s", diff)
	}
	families, err := reg.Gather()
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	if err != nil || n != 3+9 {
		t.Fatalf("%d series registered (%v), want every label from the start", n, err)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
