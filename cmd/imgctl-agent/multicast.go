package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// mcastOpts are multicast mode's settings (imgctl.dist=multicast and
// friends, put on the cmdline by the boot resolver).
type mcastOpts struct {
	api         string // the senders' API, …/api/v1/dist/multicast/
	node, token string
	group       netip.AddrPort
	// stall: no datagram of the image for this long, and the node repairs
	// everything missing over HTTP (the carousel stopped, or multicast does
	// not reach this node).
	stall time.Duration
}

type mcastFlags struct {
	group *string
	port  *int
}

func registerMulticastFlags(fs *flag.FlagSet) mcastFlags {
	return mcastFlags{
		group: fs.String("group", "", "multicast: group address to join (imgctl.mcast_group)"),
		port:  fs.Int("port", 7074, "multicast: UDP port (imgctl.mcast_port)"),
	}
}

// opts returns multicast options, or nil when dist is another mode.
func (f mcastFlags) opts(dist string, tf treeFlags) (*mcastOpts, error) {
	if dist != "multicast" {
		return nil, nil
	}
	if *tf.coord == "" || *tf.node == "" || *f.group == "" {
		return nil, usageErr("multicast mode needs --coordinator, --node and --group")
	}
	g, err := netip.ParseAddr(*f.group)
	if err != nil || !g.Is4() || !g.IsMulticast() {
		return nil, usageErr("--group " + *f.group + ": want an IPv4 multicast address")
	}
	if *f.port <= 0 || *f.port > 65535 {
		return nil, usageErr(fmt.Sprintf("--port %d: want 1-65535", *f.port))
	}
	stall := *tf.stall
	if stall <= 0 {
		stall = 15
	}
	return &mcastOpts{api: strings.TrimRight(*tf.coord, "/") + "/multicast/", node: *tf.node, token: *tf.token,
		group: netip.AddrPortFrom(g, uint16(*f.port)), stall: time.Duration(stall) * time.Second}, nil
}

// fetchMulticast receives the root image in multicast mode: it joins the
// group on the interface facing the boot server, announces itself (which
// starts the server's carousel), assembles pieces from the datagrams, and
// once it has seen every piece go by (or heard nothing for a stall period)
// repairs what is missing from the boot server at rootURL over HTTP Range.
// Every piece is verified against the manifest before it counts; the whole
// image is checked at the end.
func fetchMulticast(ctx context.Context, rootURL string, m *manifest, out string, o mcastOpts, retries int) error {
	size := m.Artifacts["rootfs"].Size
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	id, err := mcastwire.ImageID(m.ImageDigest)
	if err != nil {
		return err
	}
	// Incomplete pieces wait in a staging file beside the output, so the
	// output never holds a byte that has not been verified.
	staging, err := os.OpenFile(out+".staging", os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(staging.Name())
	defer staging.Close()
	a := newAssembly(f, staging, size, m.Root.PieceSize, m.Root.Pieces, id)
	n := len(m.Root.Pieces)

	conn, err := joinGroup(rootURL, o.group)
	if err != nil {
		// Without multicast the node still boots: everything is repaired.
		fmt.Fprintln(os.Stderr, "imgctl-agent: multicast unavailable, fetching over HTTP:", err)
	}
	recvErr := make(chan error, 1)
	if conn != nil {
		defer conn.Close()
		go func() { recvErr <- receive(conn, a) }()
	}
	c := &coordinator{o: treeOpts{coordinator: o.api, node: o.node, token: o.token}}
	joined := false
	if conn != nil {
		for i := 0; i < 3 && ctx.Err() == nil; i++ {
			err = c.call(ctx, "join", map[string]any{"transfer": m.ImageDigest, "node": o.node}, nil)
			if joined = err == nil; joined {
				break
			}
			fmt.Fprintln(os.Stderr, "imgctl-agent: multicast join:", err)
			if strings.Contains(err.Error(), "409") {
				break // refused (settings); repair everything
			}
			sleep(ctx, time.Second)
		}
	}
	if joined {
		// The stall clock starts now: the carousel starts on the join.
		a.mu.Lock()
		a.last = time.Now()
		a.mu.Unlock()
	}
	rctx, stopReports := context.WithCancel(ctx)
	defer stopReports()
	verified := false
	report := func(ctx context.Context) {
		p := a.progress()
		c.call(ctx, "progress", map[string]any{"transfer": m.ImageDigest, "node": o.node, "held": p.Held, "multicast": p.Multicast,
			"repaired": p.Repaired, "repair_bytes": p.RepairBytes, "want_carousel": p.WantCarousel && joined, "done": p.Done && verified}, nil)
	}
	if joined {
		// Every 2 s, and at once when the node stops needing the carousel
		// (the sender decides at the end of each pass whether to go on).
		go func() {
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			want := true
			for {
				a.mu.Lock()
				changed := a.changed
				a.mu.Unlock()
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
				case <-changed:
					if a.progress().WantCarousel == want {
						continue
					}
				}
				want = a.progress().WantCarousel
				report(rctx) // best effort: every report carries the totals
			}
		}()
	}

	// A few repairs at once: each waits a round trip through queues
	// shaped links build up, and the pieces of one node are independent.
	bufs := make([][]byte, repairWorkers)
	for i := range bufs {
		bufs[i] = make([]byte, m.Root.PieceSize)
	}
	failures := 0
	// settle: this long without a datagram, the piece being filled is not
	// going to be completed by this pass (datagrams come every fraction of
	// a millisecond while the carousel runs).
	const settle = 300 * time.Millisecond
	for {
		a.mu.Lock()
		held, seen, quiet, changed, cur := a.held, a.nSeen, time.Since(a.last), a.changed, a.cur
		a.mu.Unlock()
		if held == n {
			break
		}
		select {
		case err := <-recvErr:
			return fmt.Errorf("multicast receive: %w", err)
		default:
		}
		// Repair once every piece went by (all but the one the carousel is
		// still filling), or when nothing came for a stall period.
		if joined && quiet < o.stall && seen < n {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		var todo []int
		for p := 0; p < n; p++ {
			if p == cur && joined && quiet < settle {
				continue // still arriving; the next round takes it if it stays incomplete
			}
			todo = append(todo, p)
		}
		if err := repairAll(ctx, a, rootURL, todo, bufs, &failures, retries*n); err != nil {
			return err
		}
		// Only the piece still arriving may be left: wait for it a little.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if conn != nil {
		conn.Close()
	}
	if err := wholeMatches(f, size, m.Artifacts["rootfs"].SHA256); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	verified = true
	stopReports()
	if joined {
		report(context.WithoutCancel(ctx))
	}
	p := a.progress()
	fmt.Fprintf(os.Stderr, "imgctl-agent: root image verified (%d pieces: %d by multicast, %d repaired with %d HTTP bytes)\n",
		n, p.Multicast, p.Repaired, p.RepairBytes)
	return nil
}

// repairWorkers is how many pieces a node repairs at once (each needs a
// piece-sized buffer: memory stays at a few pieces).
const repairWorkers = 3

// repairAll repairs the pieces in todo (held ones are skipped inside
// repair) with one worker per buffer. A failure is logged and counted in
// *failures; it returns an error when *failures reaches limit or ctx ends.
func repairAll(ctx context.Context, a *assembly, url string, todo []int, bufs [][]byte, failures *int, limit int) error {
	var mu sync.Mutex
	var fatal error
	next := 0
	var wg sync.WaitGroup
	for _, buf := range bufs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(todo) || fatal != nil || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				p := todo[next]
				next++
				mu.Unlock()
				err := a.repair(ctx, url, p, buf)
				if err == nil || ctx.Err() != nil {
					continue
				}
				fmt.Fprintln(os.Stderr, "imgctl-agent:", err)
				mu.Lock()
				*failures++
				if *failures >= limit {
					fatal = fmt.Errorf("root image %s: %w", url, err)
				}
				k := *failures
				mu.Unlock()
				sleep(ctx, time.Duration(min(k, 5))*time.Second)
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	return ctx.Err()
}

func wholeMatches(f *os.File, size int64, want string) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return errMismatch{fmt.Sprintf("root image sha256 %s, manifest says %s", got, want)}
	}
	return nil
}

// joinGroup joins group (IGMP) on the interface that faces the server of
// rootURL, with a receive buffer large enough to ride out a busy CPU.
func joinGroup(rootURL string, group netip.AddrPort) (*net.UDPConn, error) {
	u, err := neturl.Parse(rootURL)
	if err != nil {
		return nil, err
	}
	ifi, err := interfaceTowards(u.Hostname())
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
	if err != nil {
		return nil, fmt.Errorf("join %s on %s: %w", group, ifi.Name, err)
	}
	// SO_RCVBUFFORCE (root, as in the initramfs) passes rmem_max; else the
	// plain request, capped.
	if rc, err := conn.SyscallConn(); err == nil {
		var serr error
		rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20)
		})
		if serr != nil {
			conn.SetReadBuffer(16 << 20)
		}
	}
	return conn, nil
}

// interfaceTowards is the interface whose address the kernel would use to
// reach host.
func interfaceTowards(host string) (*net.Interface, error) {
	c, err := net.Dial("udp4", net.JoinHostPort(host, "9"))
	if err != nil {
		return nil, fmt.Errorf("route to %s: %w", host, err)
	}
	local := c.LocalAddr().(*net.UDPAddr).IP
	c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		addrs, _ := ifs[i].Addrs()
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.Equal(local) {
				return &ifs[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no interface has %s (the route to %s)", local, host)
}

// receive feeds datagrams to a until conn is closed. It reads up to 64
// datagrams per system call (recvmmsg): at ~9,000 datagrams a second per
// 100 Mbit/s, one call each would cost a busy node more CPU than the
// assembly itself.
func receive(conn *net.UDPConn, a *assembly) error {
	pc := ipv4.NewPacketConn(conn)
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		k, err := pc.ReadBatch(ms, 0)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range ms[:k] {
			h, data, err := mcastwire.Decode(m.Buffers[0][:m.N])
			if err != nil {
				continue // not ours, or malformed: the group is not ours alone
			}
			if err := a.chunk(h, data); err != nil {
				return err
			}
		}
	}
}
