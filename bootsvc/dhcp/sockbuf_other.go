//go:build !linux

package dhcp

import "net"

// setReadBuffer sets uc's receive buffer (capped by the system's limit).
func setReadBuffer(uc *net.UDPConn, bytes int) error { return uc.SetReadBuffer(bytes) }
