package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// pieceState is where a piece of a multicast transfer stands.
type pieceState uint8

const (
	pieceEmpty     pieceState = iota // nothing received
	piecePartial                     // some chunks staged in the staging file
	pieceRepairing                   // being repaired over HTTP; datagrams for it are ignored
	pieceHeld                        // verified against the manifest and written
)

// file is where the root image is assembled: the output file (tmpfs in
// the initramfs), written at each piece's offset, or the staging file.
type file interface {
	io.ReaderAt
	io.WriterAt
}

// assembly puts the root image back together from multicast chunks. The
// piece the carousel is sending is built in memory and, once complete,
// verified against the manifest before it is written; a piece the carousel
// moved past incomplete is staged in a separate staging file (its chunks
// at their offsets, recorded in a bitmap) until repair or the next pass
// completes it, and is verified again as a whole before it is written to the
// output and counts as held: the output only ever holds verified pieces. So
// memory stays at one piece plus bitmaps, whatever the image size (tmpfs
// keeps a sparse staging file to the chunks actually staged). Safe for concurrent use
// (the receiver and the repairer).
type assembly struct {
	f         file // verified pieces only
	staging   file // chunks of incomplete pieces
	size      int64
	pieceSize int64
	want      []string // sha256 per piece, hex
	image     [8]byte

	mu          sync.Mutex
	state       []pieceState
	have        [][]uint64 // chunk bitmaps, nil until the piece sees a chunk
	got         []int      // chunks in have
	seen        []bool     // some chunk of the piece came by multicast
	refetch     []bool     // failed verification: fetch the whole piece
	nSeen, held int
	viaMcast    int
	repaired    int
	repairBytes int64
	badPieces   int
	cur         int // piece in buf, -1 none
	buf         []byte
	last        time.Time // when a chunk of this image last arrived
	changed     chan struct{}
}

func newAssembly(f, staging file, size, pieceSize int64, want []string, image [8]byte) *assembly {
	n := len(want)
	return &assembly{f: f, staging: staging, size: size, pieceSize: pieceSize, want: want, image: image,
		state: make([]pieceState, n), have: make([][]uint64, n), got: make([]int, n), seen: make([]bool, n), refetch: make([]bool, n),
		cur: -1, buf: make([]byte, pieceSize), last: time.Now(), changed: make(chan struct{})}
}

func (a *assembly) pieceLen(p int) int64 { return min(a.pieceSize, a.size-int64(p)*a.pieceSize) }

// chunk takes one datagram's chunk. It returns an error only for a write
// failure (the node cannot continue); datagrams that do not fit the
// manifest are dropped.
func (a *assembly) chunk(h mcastwire.Header, data []byte) error {
	p := int(h.Piece)
	if h.Image != a.image || p >= len(a.want) {
		return nil
	}
	n := a.pieceLen(p)
	k := int(h.Offset / mcastwire.MaxData)
	if int64(h.Offset) >= n || len(data) != mcastwire.ChunkLen(n, k) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = time.Now()
	if !a.seen[p] {
		a.seen[p] = true
		a.nSeen++
		a.signal()
	}
	if a.state[p] == pieceHeld || a.state[p] == pieceRepairing {
		if a.cur >= 0 {
			return a.stage() // the carousel moved past the piece in buf
		}
		return nil
	}
	if a.cur != p {
		if err := a.switchTo(p); err != nil {
			return err
		}
	}
	bm := a.bitmap(p)
	if bm[k/64]&(1<<(k%64)) != 0 {
		return nil
	}
	copy(a.buf[h.Offset:], data)
	bm[k/64] |= 1 << (k % 64)
	a.got[p]++
	if a.got[p] < mcastwire.Chunks(n) {
		return nil
	}
	a.cur = -1
	if err := a.accept(p, a.buf[:n]); err != nil {
		if _, ok := err.(errMismatch); ok {
			return nil // counted; the repairer fetches it whole
		}
		return err
	}
	a.viaMcast++
	return nil
}

// switchTo stages the piece in buf (if incomplete) and loads p's staged
// chunks into buf; a.mu is held.
func (a *assembly) switchTo(p int) error {
	if err := a.stage(); err != nil {
		return err
	}
	if a.got[p] > 0 {
		if _, err := a.staging.ReadAt(a.buf[:a.pieceLen(p)], int64(p)*a.pieceSize); err != nil && err != io.EOF {
			return fmt.Errorf("read staged piece %d: %w", p, err)
		}
	}
	a.cur = p
	return nil
}

// stage writes the chunks of the piece in buf to the staging file; a.mu is
// held.
func (a *assembly) stage() error {
	p := a.cur
	if p < 0 {
		return nil
	}
	a.cur = -1
	a.state[p] = piecePartial
	for _, r := range runs(a.have[p], mcastwire.Chunks(a.pieceLen(p)), true) {
		from, to := int64(r[0])*mcastwire.MaxData, min(int64(r[1])*mcastwire.MaxData, a.pieceLen(p))
		if _, err := a.staging.WriteAt(a.buf[from:to], int64(p)*a.pieceSize+from); err != nil {
			return fmt.Errorf("stage piece %d: %w", p, err)
		}
	}
	return nil
}

// accept verifies a whole piece and writes it; a mismatch resets the piece
// for a whole refetch and returns errMismatch. a.mu is held.
func (a *assembly) accept(p int, piece []byte) error {
	if sum := sha256.Sum256(piece); hex.EncodeToString(sum[:]) != a.want[p] {
		a.badPieces++
		a.have[p], a.got[p], a.refetch[p], a.state[p] = nil, 0, true, piecePartial
		return errMismatch{fmt.Sprintf("piece %d: sha256 %x, manifest says %s", p, sum, a.want[p])}
	}
	if _, err := a.f.WriteAt(piece, int64(p)*a.pieceSize); err != nil {
		return fmt.Errorf("write piece %d: %w", p, err)
	}
	a.state[p], a.have[p] = pieceHeld, nil
	a.held++
	a.signal()
	return nil
}

func (a *assembly) bitmap(p int) []uint64 {
	if a.have[p] == nil {
		a.have[p] = make([]uint64, (mcastwire.Chunks(a.pieceLen(p))+63)/64)
	}
	return a.have[p]
}

// signal wakes waiters; a.mu is held.
func (a *assembly) signal() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// runs returns the [from, to) chunk index runs of bm (first n bits) that
// are set (set true) or clear.
func runs(bm []uint64, n int, set bool) [][2]int {
	var out [][2]int
	start := -1
	for i := 0; i <= n; i++ {
		in := false
		if i < n {
			b := bm != nil && bm[i/64]&(1<<(i%64)) != 0
			in = b == set
		}
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			out = append(out, [2]int{start, i})
			start = -1
		}
	}
	return out
}

// progress is a snapshot for reports.
type mcastProgress struct {
	Held, Multicast, Repaired int
	RepairBytes               int64
	WantCarousel, Done        bool
}

func (a *assembly) progress() mcastProgress {
	a.mu.Lock()
	defer a.mu.Unlock()
	return mcastProgress{Held: a.held, Multicast: a.viaMcast, Repaired: a.repaired, RepairBytes: a.repairBytes,
		WantCarousel: a.nSeen < len(a.want) && a.held < len(a.want), Done: a.held == len(a.want)}
}

// missing counts chunks held in bitmaps, for tests and logs.
func (a *assembly) chunksHeld(p int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := 0
	for _, w := range a.have[p] {
		c += bits.OnesCount64(w)
	}
	return c
}
