package dhcp

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer sets uc's receive buffer to bytes, past net.core.rmem_max
// when the process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN, which a DHCP
// server on port 67 usually has), else as far as rmem_max allows.
func setReadBuffer(uc *net.UDPConn, bytes int) error {
	rc, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes)
	}); err != nil {
		return err
	}
	if serr == nil {
		return nil
	}
	return uc.SetReadBuffer(bytes)
}
