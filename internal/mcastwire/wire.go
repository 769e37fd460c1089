// Package mcastwire is the datagram format of multicast root image
// distribution: the boot server (bootsvc/dist) cuts each verified 4 MiB
// piece into chunks and sends one chunk per UDP datagram; nodes
// (cmd/imgctl-agent) put the chunks back together. It imports only the
// standard library, so the static node agent can share it: one definition
// of the format on both ends.
//
// A datagram is a 24-byte header and up to MaxData bytes of the piece:
//
//	0  2  magic "IM"
//	2  1  version (1)
//	3  1  flags (0)
//	4  8  image id: the first 8 bytes of the image digest
//	12 4  piece index
//	16 4  byte offset of the chunk in the piece (a multiple of MaxData)
//	20 4  carousel pass (0 first)
//
// All integers big-endian. A datagram of MaxDatagram bytes fits in a 1500-
// byte Ethernet MTU with IPv4 and UDP headers and room to spare (tunnels,
// VLAN tags).
package mcastwire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sizes of the format.
const (
	HeaderSize  = 24
	MaxDatagram = 1400
	MaxData     = MaxDatagram - HeaderSize
	// Overhead is what each datagram costs on the wire beyond its UDP
	// payload: IPv4 (20) and UDP (8) headers.
	Overhead = 28
	version  = 1
)

// Header says where a chunk belongs.
type Header struct {
	Image  [8]byte // ImageID of the image digest
	Piece  uint32
	Offset uint32
	Pass   uint32
}

// ImageID is the first 8 bytes of an "sha256:<hex>" image digest: enough
// to tell the images sent to one group apart, not a security check (every
// piece is verified against the manifest's sha256).
func ImageID(digest string) ([8]byte, error) {
	var id [8]byte
	h := strings.TrimPrefix(digest, "sha256:")
	if len(h) < 16 {
		return id, fmt.Errorf("image digest %q: too short", digest)
	}
	if _, err := hex.Decode(id[:], []byte(h[:16])); err != nil {
		return id, fmt.Errorf("image digest %q: %w", digest, err)
	}
	return id, nil
}

// Encode writes h and data into buf, which must hold HeaderSize+len(data)
// bytes, and returns the datagram.
func Encode(buf []byte, h Header, data []byte) []byte {
	b := buf[:HeaderSize+len(data)]
	b[0], b[1], b[2], b[3] = 'I', 'M', version, 0
	copy(b[4:12], h.Image[:])
	binary.BigEndian.PutUint32(b[12:], h.Piece)
	binary.BigEndian.PutUint32(b[16:], h.Offset)
	binary.BigEndian.PutUint32(b[20:], h.Pass)
	copy(b[HeaderSize:], data)
	return b
}

// ErrNotOurs is a datagram that is not of this format or version: anything
// else sent to the group is ignored, not an error to report.
var ErrNotOurs = errors.New("not an imgctl multicast datagram")

// Decode parses a datagram; data aliases b.
func Decode(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < HeaderSize || b[0] != 'I' || b[1] != 'M' || b[2] != version {
		return h, nil, ErrNotOurs
	}
	if len(b) > MaxDatagram {
		return h, nil, fmt.Errorf("datagram of %d bytes: over %d", len(b), MaxDatagram)
	}
	copy(h.Image[:], b[4:12])
	h.Piece = binary.BigEndian.Uint32(b[12:])
	h.Offset = binary.BigEndian.Uint32(b[16:])
	h.Pass = binary.BigEndian.Uint32(b[20:])
	if h.Offset%MaxData != 0 {
		return h, nil, fmt.Errorf("piece %d: offset %d not a multiple of %d", h.Piece, h.Offset, MaxData)
	}
	return h, b[HeaderSize:], nil
}

// Chunks is how many chunks a piece of n bytes is cut into.
func Chunks(n int64) int { return int((n + MaxData - 1) / MaxData) }

// ChunkLen is the length of chunk i of a piece of n bytes.
func ChunkLen(n int64, i int) int { return int(min(MaxData, n-int64(i)*MaxData)) }
