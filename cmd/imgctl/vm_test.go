package main

import (
	"strings"
	"testing"
)

func TestDefaultBridgeAddr(t *testing.T) {
	tests := []struct{ ip, mask, want, wantErr string }{
		{"10.50.0.11", "", "10.50.0.1/24", ""},
		{"10.50.0.1", "", "10.50.0.254/24", ""},
		{"10.42.1.7", "255.255.0.0", "10.42.0.1/16", ""},
		{"10.42.0.1", "/16", "10.42.255.254/16", ""},
		{"192.168.5.9", "28", "192.168.5.1/28", ""},
		{"10.0.0.2", "/31", "", "no room"},
		{"10.0.0.2", "255.0.255.0", "", "not contiguous"},
		{"fe80::1", "", "", "not an IPv4"},
		{"nonsense", "", "", "not an IPv4"},
	}
	for _, tt := range tests {
		got, err := defaultBridgeAddr(tt.ip, tt.mask)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("defaultBridgeAddr(%s, %q) = %q, %v; want error %q", tt.ip, tt.mask, got, err, tt.wantErr)
			}
		case err != nil || got != tt.want:
			t.Errorf("defaultBridgeAddr(%s, %q) = %q, %v; want %s", tt.ip, tt.mask, got, err, tt.want)
		}
	}
}
