package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
)

// batchSize is how many packets one read or write system call moves
// (recvmmsg/sendmmsg on Linux). A boot storm queues hundreds at once; one
// wake-up then answers them all instead of one each.
const batchSize = 32

// readBuffer is the receive buffer asked for on the server socket: a
// power-on of 10,000 nodes queues thousands of DISCOVERs at once, far more
// than the kernel's default (about 200 KiB, a few hundred packets) holds.
const readBuffer = 8 << 20

// serveBatched is Run's loop on a UDP socket: read what is queued (up to
// batchSize packets), answer each in order, send the replies together.
func (s *Server) serveBatched(ctx context.Context, uc *net.UDPConn) error {
	if err := setReadBuffer(uc, readBuffer); err != nil {
		s.log.Warn("could not raise the receive buffer; a large storm may lose packets", "bytes", readBuffer, "err", err)
	}
	pc := ipv4.NewPacketConn(uc)
	in := make([]ipv4.Message, batchSize)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	out := make([]ipv4.Message, 0, batchSize)
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dhcp: read: %w", err)
		}
		out = out[:0]
		for _, m := range in[:n] {
			resp, dst := s.Handle(ctx, m.Buffers[0][:m.N], m.Addr)
			if resp != nil {
				out = append(out, ipv4.Message{Buffers: [][]byte{resp}, Addr: dst})
			}
		}
		s.send(pc, out)
	}
}

// send writes the replies, skipping (and logging) one that cannot be sent,
// as the single-packet loop does.
func (s *Server) send(pc *ipv4.PacketConn, out []ipv4.Message) {
	for len(out) > 0 {
		n, err := pc.WriteBatch(out, 0)
		if err != nil {
			// sendmmsg fails only when its first message does.
			s.log.Warn("send reply failed", "to", addrString(out[0].Addr), "err", err)
			n = 1
		}
		out = out[n:]
	}
}
