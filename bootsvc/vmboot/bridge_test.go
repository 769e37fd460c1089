package vmboot

import (
	"strings"
	"testing"
)

func TestDefaultBridgeAddr(t *testing.T) {
	tests := []struct{ name, ip, mask, want, wantErr string }{
		{"node in /24", "10.50.0.11", "", "10.50.0.1/24", ""},
		{"node is .1", "10.50.0.1", "", "10.50.0.254/24", ""},
		{"dotted /16", "10.42.1.7", "255.255.0.0", "10.42.0.1/16", ""},
		{"node is .1 in /16", "10.42.0.1", "/16", "10.42.255.254/16", ""},
		{"bare prefix", "192.168.5.9", "28", "192.168.5.1/28", ""},
		{"/31", "10.0.0.2", "/31", "", "no room"},
		{"holes in mask", "10.0.0.2", "255.0.255.0", "", "not contiguous"},
		{"prefix out of range", "10.0.0.2", "/33", "", "out of range"},
		{"IPv6", "fe80::1", "", "", "not an IPv4"},
		{"nonsense", "nonsense", "", "", "not an IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultBridgeAddr(tt.ip, tt.mask)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("DefaultBridgeAddr(%s, %q) = %q, %v; want error %q", tt.ip, tt.mask, got, err, tt.wantErr)
				}
			case err != nil || got != tt.want:
				t.Errorf("DefaultBridgeAddr(%s, %q) = %q, %v; want %s", tt.ip, tt.mask, got, err, tt.want)
			}
		})
	}
}
