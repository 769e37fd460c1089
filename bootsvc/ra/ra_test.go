package ra

import (
	"bytes"
	"net"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

func TestAdvertisement(t *testing.T) {
	mac, _ := net.ParseMAC("02:41:09:00:00:01")
	tests := []struct {
		name string
		mac  net.HardwareAddr
		want []byte
	}{
		{"with source link-layer option", mac, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x02, 0x41, 0x09, 0, 0, 1}},
		{"no MAC (e.g. a tun device)", nil, make([]byte, 12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := Advertisement(tt.mac)
			if !bytes.Equal(body, tt.want) {
				t.Fatalf("body = % x, want % x", body, tt.want)
			}
			// It parses back as a router advertisement.
			b, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := icmp.ParseMessage(58, b)
			if err != nil || m.Type != ipv6.ICMPTypeRouterAdvertisement {
				t.Fatalf("parse: %v %v", m, err)
			}
			if len(b)%8 != 0 {
				t.Errorf("options must end on an 8-octet boundary: message is %d bytes", len(b))
			}
		})
	}
}

func TestNewNeedsInterface(t *testing.T) {
	if _, err := New(Config{Enabled: true}, nil); err == nil {
		t.Error("New without an interface succeeded")
	}
	s, err := New(Config{Enabled: true, Interface: "br0"}, nil)
	if err != nil || s.cfg.Interval != Defaults().Interval {
		t.Errorf("New: %v, interval %v", err, s.cfg.Interval)
	}
}
