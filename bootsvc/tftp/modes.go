package tftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// TFTP opcodes and the error code for a request we will not serve (RFC 1350).
const (
	opRRQ          = 1
	opWRQ          = 2
	opError        = 5
	errNotDefined  = 0
	maxRequestSize = 512
)

// modeFilter wraps the listening socket and answers read and write requests
// whose transfer mode is missing or not octet/netascii with a TFTP ERROR
// itself: pin/tftp would serve them (even "mail", or none) as octet.
type modeFilter struct {
	net.PacketConn
	log *slog.Logger
}

func (m modeFilter) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := m.PacketConn.ReadFrom(p)
		if err != nil || n < 2 {
			return n, addr, err
		}
		op := binary.BigEndian.Uint16(p)
		if op != opRRQ && op != opWRQ {
			return n, addr, err
		}
		if mode, ok := requestMode(p[2:n]); !ok {
			m.log.Warn("refused request", "peer", addr.String(), "mode", mode)
			m.PacketConn.WriteTo(errorPacket(fmt.Sprintf("unsupported transfer mode %q (want octet or netascii)", mode)), addr)
			continue
		}
		return n, addr, err
	}
}

// requestMode returns the mode field of a request body (filename NUL mode
// NUL options…) and whether we serve it.
func requestMode(body []byte) (string, bool) {
	fields := bytes.SplitN(body, []byte{0}, 3)
	if len(fields) < 3 { // no NUL after the mode: malformed
		mode := ""
		if len(fields) == 2 {
			mode = string(fields[1])
		}
		return mode, false
	}
	mode := strings.ToLower(string(fields[1]))
	return mode, mode == "octet" || mode == "netascii"
}

func errorPacket(msg string) []byte {
	if len(msg) > maxRequestSize-5 {
		msg = msg[:maxRequestSize-5]
	}
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opError)
	binary.BigEndian.PutUint16(b[2:], errNotDefined)
	b = append(b, msg...)
	return append(b, 0)
}
