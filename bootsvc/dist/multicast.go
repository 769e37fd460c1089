package dist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
	"github.com/imgctl/imgctl/internal/mcastwire"
)

// Multicast runs the multicast senders of the boot service: when the first
// node in multicast mode joins for a root image, a carousel starts sending
// that image's verified pieces to the node's group at its configured rate,
// and loops while any live receiver still needs pieces it has not seen;
// receivers repair the rest over HTTP Range from the boot server and report
// what came which way. Safe for concurrent use.
type Multicast struct {
	iface     string
	addr      netip.Addr
	artifacts *images.Store
	log       *slog.Logger
	now       func() time.Time

	mu        sync.Mutex
	ctx       context.Context // set by Run; nil: not running
	wg        sync.WaitGroup
	transfers map[string]*mtransfer // by image digest
}

// MulticastDeps is what the senders need: the boot interface and address
// (datagrams leave there, TTL 1) and the artifact store the root images
// are read from.
type MulticastDeps struct {
	Interface string
	Address   netip.Addr
	Artifacts *images.Store
	Log       *slog.Logger // nil: discard
}

type mtransfer struct {
	digest    string
	group     netip.AddrPort
	rate      int64
	pieces    int
	pieceSize int64
	started   time.Time
	sending   bool
	bytesSent int64 // UDP payload bytes
	datagrams int64
	passes    int
	badPieces int
	err       string // the last carousel's failure
	nodes     map[string]*mnode
}

type mnode struct {
	name                      string
	held, multicast, repaired int
	repairBytes               int64
	wantCarousel, done        bool
	joined, updated, doneAt   time.Time
}

// heartbeat is how often receivers report; one that stays silent for
// three is gone (powered off, rebooted into something else).
const heartbeat = 2 * time.Second

// gather is how long a carousel waits after its first receiver joined.
const gather = time.Second

// NewMulticast returns the senders; Run must be running before Join starts
// any.
func NewMulticast(d MulticastDeps) *Multicast {
	return &Multicast{iface: d.Interface, addr: d.Address, artifacts: d.Artifacts,
		log: logging.OrDiscard(d.Log).With("server", "multicast"), now: time.Now, transfers: map[string]*mtransfer{}}
}

// Run lets carousels start until ctx ends, then waits for them to stop.
func (m *Multicast) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.ctx = nil
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// MulticastJoin is a receiver announcing itself: it has joined the group
// and wants the image's carousel.
type MulticastJoin struct {
	Transfer string `json:"transfer"` // image digest
	Node     string `json:"node"`
}

// MulticastProgress is a receiver's report (totals so far).
type MulticastProgress struct {
	Transfer    string `json:"transfer"`
	Node        string `json:"node"`
	Held        int    `json:"held"`         // verified pieces
	Multicast   int    `json:"multicast"`    // of them, completed from multicast datagrams alone
	Repaired    int    `json:"repaired"`     // completed or fetched over HTTP
	RepairBytes int64  `json:"repair_bytes"` // HTTP bytes the repairs took
	// WantCarousel: some piece has not come by multicast at all yet (a
	// late joiner); false once the node has seen every piece at least in
	// part, and repairs the rest itself.
	WantCarousel bool `json:"want_carousel"`
	Done         bool `json:"done"`
}

// Join registers node (as the inventory has it, groups merged) for its
// image digest and starts the carousel if none runs.
func (m *Multicast) Join(n inventory.Node, digest string) error {
	if n.Distribution != inventory.DistMulticast || n.Multicast == nil {
		return fmt.Errorf("multicast join: node %s: distribution %q, not multicast", n.Name, n.Distribution)
	}
	group, err := inventory.ParseMulticastGroup(n.Multicast.Group)
	if err != nil {
		return fmt.Errorf("multicast join: node %s: %w", n.Name, err)
	}
	port := n.Multicast.Port
	if port == 0 {
		port = inventory.DefaultMulticastPort
	}
	rate, err := inventory.ParseRate(n.Multicast.Rate)
	if err != nil {
		return fmt.Errorf("multicast join: node %s: %w", n.Name, err)
	}
	e, err := m.artifacts.Get(n.Image, digest)
	if err != nil {
		return fmt.Errorf("multicast join: node %s: image %s: %w", n.Name, n.Image, err)
	}
	dst := netip.AddrPortFrom(group, uint16(port))

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return errors.New("multicast join: the senders are not running")
	}
	if !m.addr.Is4() || m.iface == "" {
		return fmt.Errorf("multicast join: node %s: the boot service has no IPv4 boot interface and address to send from", n.Name)
	}
	now := m.now()
	t := m.transfers[digest]
	if t == nil {
		t = &mtransfer{digest: digest, group: dst, rate: rate, pieces: len(e.Manifest.Root.Pieces),
			pieceSize: e.Manifest.Root.PieceSize, started: now, nodes: map[string]*mnode{}}
		m.transfers[digest] = t
	}
	if t.group != dst && t.sending {
		return fmt.Errorf("multicast join: node %s: image %s is being sent to %s, the node's settings say %s", n.Name, digest, t.group, dst)
	}
	for _, o := range m.transfers {
		if o != t && o.sending && o.group == dst {
			return fmt.Errorf("multicast join: node %s: group %s already carries image %s; give each image its own group or port", n.Name, dst, o.digest)
		}
	}
	t.group, t.rate = dst, rate
	nd := t.nodes[n.Name]
	if nd == nil || nd.done {
		nd = &mnode{name: n.Name, joined: now}
		t.nodes[n.Name] = nd
	}
	nd.updated, nd.wantCarousel = now, true
	if !t.sending {
		if err := m.start(t, e); err != nil {
			return err
		}
	}
	m.log.Info("receiver joined", "image", digest, "node", n.Name, "group", dst.String())
	return nil
}

// start launches t's carousel; m.mu is held.
func (m *Multicast) start(t *mtransfer, e *images.Entry) error {
	f, a, err := e.Open(images.RootFS)
	if err != nil {
		return fmt.Errorf("multicast %s: %w", t.digest, err)
	}
	conn, err := openMulticast(m.iface, m.addr, t.group)
	if err != nil {
		f.Close()
		return err
	}
	id, err := mcastwire.ImageID(t.digest)
	if err != nil {
		f.Close()
		conn.Close()
		return err
	}
	c := &carousel{conn: conn, dst: net.UDPAddrFromAddrPort(t.group), image: id, r: f, size: a.Size,
		pieceSize: e.Manifest.Root.PieceSize, want: e.Manifest.Root.Pieces, pace: newPacer(t.rate),
		active: func(int) bool { return m.wanted(t, false) },
		more:   func(int) bool { return m.wanted(t, true) },
		sent: func(n int) {
			m.mu.Lock()
			t.bytesSent += int64(n)
			t.datagrams++
			m.mu.Unlock()
		},
		passed: func() {
			m.mu.Lock()
			t.passes++
			m.mu.Unlock()
		},
		bad: func(piece int, err error) {
			m.mu.Lock()
			t.badPieces++
			m.mu.Unlock()
			m.log.Error("root image piece fails verification; not sent", "image", t.digest, "piece", piece, "err", err)
		},
	}
	t.sending, t.err = true, ""
	ctx := m.ctx
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer f.Close()
		defer conn.Close()
		// A storm's nodes join within moments of each other: gather them
		// before the first piece, or each late one repairs what it missed.
		sleepCtx(ctx, gather)
		m.log.Info("carousel started", "image", t.digest, "group", t.group.String(), "rate_bps", t.rate, "interface", m.iface)
		err := c.run(ctx)
		m.mu.Lock()
		t.sending = false
		if err != nil && ctx.Err() == nil {
			t.err = err.Error()
		}
		passes, sent := t.passes, t.bytesSent
		m.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.log.Error("carousel failed", "image", t.digest, "err", err)
			return
		}
		m.log.Info("carousel stopped", "image", t.digest, "passes", passes, "bytes", sent)
	}()
	return nil
}

// wanted: does a live receiver still need t — any that is not done
// (needCarousel false), or any that has not seen every piece (true)?
func (m *Multicast) wanted(t *mtransfer, needCarousel bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, n := range t.nodes {
		if n.done || now.Sub(n.updated) > 3*heartbeat {
			continue
		}
		if !needCarousel || n.wantCarousel {
			return true
		}
	}
	return false
}

// Report records a receiver's progress.
func (m *Multicast) Report(p MulticastProgress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.transfers[p.Transfer]
	if t == nil || t.nodes[p.Node] == nil {
		return fmt.Errorf("multicast progress of node %s for %s: %w", p.Node, p.Transfer, ErrUnknown)
	}
	if p.Held < 0 || p.Held > t.pieces || p.Multicast < 0 || p.Repaired < 0 || p.Multicast+p.Repaired > t.pieces || p.RepairBytes < 0 {
		return fmt.Errorf("multicast progress of node %s: held %d, multicast %d, repaired %d of %d pieces", p.Node, p.Held, p.Multicast, p.Repaired, t.pieces)
	}
	n := t.nodes[p.Node]
	now := m.now()
	n.held, n.multicast, n.repaired, n.repairBytes, n.wantCarousel, n.updated = p.Held, p.Multicast, p.Repaired, p.RepairBytes, p.WantCarousel, now
	if p.Done && p.Held == t.pieces && !n.done {
		n.done, n.doneAt = true, now
		m.log.Info("node holds a verified copy", "image", t.digest, "node", n.name, "seconds", now.Sub(n.joined).Seconds(),
			"multicast", n.multicast, "repaired", n.repaired, "repair_bytes", n.repairBytes)
	}
	return nil
}
