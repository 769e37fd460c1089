package dist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// pacer is a token bucket over bytes: Wait blocks until n more bytes may go
// out at rate bytes per second. The bucket holds at most burst bytes, so a
// sender that was held up (a busy CPU) catches up by at most burst, never
// with a flood a shaped link would drop.
type pacer struct {
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
	sleep  func(context.Context, time.Duration)
}

func newPacer(bitsPerSecond int64) *pacer {
	rate := float64(bitsPerSecond) / 8
	// 20 ms of data, at most 256 KiB (a switch port's buffer), at least two
	// datagrams: a sender on a busy host oversleeps by milliseconds, and a
	// bucket smaller than that loses rate it never makes up.
	burst := max(min(rate*0.020, 256<<10), 2*(mcastwire.MaxDatagram+mcastwire.Overhead))
	return &pacer{rate: rate, burst: burst, tokens: burst, now: time.Now, sleep: sleepCtx}
}

func (p *pacer) wait(ctx context.Context, n int) error {
	for {
		now := p.now()
		if !p.last.IsZero() {
			p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
		}
		p.last = now
		if p.tokens >= float64(n) {
			p.tokens -= float64(n)
			return nil
		}
		p.sleep(ctx, time.Duration((float64(n)-p.tokens)/p.rate*float64(time.Second)))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// openMulticast opens a UDP socket that sends to group from addr on the
// interface ifname, TTL 1 (the boot network only), no loopback.
func openMulticast(ifname string, addr netip.Addr, group netip.AddrPort) (*net.UDPConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("multicast %s: interface %q: %w", group, ifname, err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addr.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("multicast %s: %w", group, err)
	}
	p := ipv4.NewPacketConn(conn)
	for _, err := range []error{p.SetMulticastInterface(ifi), p.SetMulticastTTL(1), p.SetMulticastLoopback(false)} {
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("multicast %s on %s: %w", group, ifname, err)
		}
	}
	conn.SetWriteBuffer(1 << 20)
	return conn, nil
}

// carousel sends the root image r (its pieces hashed in want) to dst, piece
// by piece, each piece verified against the manifest before any of it goes
// out, paced at bitsPerSecond counting IP packets. It loops over the image
// while more(pass) says receivers still need it and returns when ctx ends
// or more says stop; active is asked between pieces, so a carousel nobody
// listens to stops within a piece.
type carousel struct {
	conn      *net.UDPConn
	dst       *net.UDPAddr
	image     [8]byte
	r         io.ReaderAt
	size      int64
	pieceSize int64
	want      []string
	pace      *pacer
	// more: after pass (0 first) ended, send another? active: keep going?
	more, active func(pass int) bool
	// sent is called after each datagram with its UDP payload bytes; passed
	// after each full pass; bad when a piece fails verification.
	sent   func(n int)
	passed func()
	bad    func(piece int, err error)
}

func (c *carousel) run(ctx context.Context) error {
	piece := make([]byte, c.pieceSize)
	buf := make([]byte, mcastwire.MaxDatagram)
	for pass := 0; ; pass++ {
		for i := range c.want {
			if ctx.Err() != nil || !c.active(pass) {
				return ctx.Err()
			}
			n := min(c.pieceSize, c.size-int64(i)*c.pieceSize)
			p := piece[:n]
			if _, err := c.r.ReadAt(p, int64(i)*c.pieceSize); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read piece %d: %w", i, err)
			}
			if sum := sha256.Sum256(p); hex.EncodeToString(sum[:]) != c.want[i] {
				// Never send what the manifest does not vouch for; the
				// receivers repair the piece (and the HTTP server refuses
				// the set too once it notices).
				c.bad(i, fmt.Errorf("piece %d: sha256 %x, manifest says %s", i, sum, c.want[i]))
				continue
			}
			for k := 0; k < mcastwire.Chunks(n); k++ {
				off := k * mcastwire.MaxData
				d := mcastwire.Encode(buf, mcastwire.Header{Image: c.image, Piece: uint32(i), Offset: uint32(off), Pass: uint32(pass)},
					p[off:off+mcastwire.ChunkLen(n, k)])
				if err := c.pace.wait(ctx, len(d)+mcastwire.Overhead); err != nil {
					return err
				}
				if err := c.send(ctx, d); err != nil {
					return err
				}
				c.sent(len(d))
			}
		}
		c.passed()
		if !c.more(pass) {
			return nil
		}
	}
}

// send writes one datagram; a full queue (ENOBUFS) waits a moment and
// tries again rather than dropping what every receiver would repair.
func (c *carousel) send(ctx context.Context, d []byte) error {
	for tries := 0; ; tries++ {
		_, err := c.conn.WriteToUDP(d, c.dst)
		if err == nil || !errors.Is(err, syscall.ENOBUFS) || tries >= 50 {
			if err != nil {
				return fmt.Errorf("send to %s: %w", c.dst, err)
			}
			return nil
		}
		sleepCtx(ctx, time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
