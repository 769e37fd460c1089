package dist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// TestPacer: over a simulated second the bucket lets out the rate, give or
// take one burst.
func TestPacer(t *testing.T) {
	now := time.Unix(0, 0)
	p := newPacer(80e6) // 10 MB/s
	p.now = func() time.Time { return now }
	p.sleep = func(_ context.Context, d time.Duration) { now = now.Add(d + 50*time.Microsecond) } // timers overshoot
	sent := 0
	for now.Before(time.Unix(1, 0)) {
		if err := p.wait(context.Background(), 1428); err != nil {
			t.Fatal(err)
		}
		sent += 1428
	}
	if lo, hi := 10e6-p.burst-1428, 10e6+p.burst+1428; float64(sent) < lo || float64(sent) > hi {
		t.Errorf("sent %d bytes in a second at 10 MB/s, want %.0f-%.0f", sent, lo, hi)
	}
}

// TestCarousel sends a three-piece image over a real (loopback, unicast)
// UDP socket: every chunk of the good pieces arrives in order with the
// image id, the corrupted piece is never sent, and a second pass runs
// while more says so.
func TestCarousel(t *testing.T) {
	const pieceSize = 16 << 10
	img := make([]byte, 2*pieceSize+5000)
	for i := range img {
		img[i] = byte(rand.N(256))
	}
	var want []string
	for off := 0; off < len(img); off += pieceSize {
		sum := sha256.Sum256(img[off:min(off+pieceSize, len(img))])
		want = append(want, hex.EncodeToString(sum[:]))
	}
	want[1] = hex.EncodeToString(make([]byte, 32)) // the manifest disagrees: piece 1 is "corrupt"
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(4 << 20)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	var bad []int
	passes, sent := 0, 0
	c := &carousel{conn: tx, dst: rx.LocalAddr().(*net.UDPAddr), image: id, r: bytes.NewReader(img), size: int64(len(img)),
		pieceSize: pieceSize, want: want, pace: newPacer(50e6),
		active: func(int) bool { return true }, more: func(pass int) bool { return pass < 1 },
		sent: func(n int) { sent += n }, passed: func() { passes++ }, bad: func(p int, _ error) { bad = append(bad, p) }}
	if err := c.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if passes != 2 || len(bad) != 2 || bad[0] != 1 {
		t.Fatalf("passes %d, bad %v: want 2 passes, piece 1 refused each time", passes, bad)
	}
	got := map[[2]uint32][]byte{}
	buf := make([]byte, 2048)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for n := 0; n < 2*(mcastwire.Chunks(pieceSize)+mcastwire.Chunks(5000)); n++ {
		k, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", n, err)
		}
		h, d, err := mcastwire.Decode(buf[:k])
		if err != nil || h.Image != id || h.Piece == 1 {
			t.Fatalf("datagram %+v: %v", h, err)
		}
		off := int(h.Piece)*pieceSize + int(h.Offset)
		if !bytes.Equal(d, img[off:off+len(d)]) {
			t.Fatalf("piece %d offset %d: wrong bytes", h.Piece, h.Offset)
		}
		got[[2]uint32{h.Piece, h.Offset}] = d
	}
	if len(got) != mcastwire.Chunks(pieceSize)+mcastwire.Chunks(5000) {
		t.Errorf("%d distinct chunks", len(got))
	}
	if sent == 0 {
		t.Error("nothing counted as sent")
	}
}

// TestMulticastWanted: the carousel goes on into another pass only for a
// live receiver that has not seen every piece, keeps sending for any live
// receiver not done, and reports are checked against the transfer.
func TestMulticastWanted(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMulticast(MulticastDeps{})
	m.now = func() time.Time { return now }
	tr := &mtransfer{digest: "sha256:aa", pieces: 4, pieceSize: 4 << 20, nodes: map[string]*mnode{
		"a": {name: "a", joined: now, updated: now, wantCarousel: true},
		"b": {name: "b", joined: now, updated: now, wantCarousel: true},
	}}
	m.transfers[tr.digest] = tr
	report := func(p MulticastProgress) error { p.Transfer = tr.digest; return m.Report(p) }
	for _, tc := range []struct {
		name         string
		p            MulticastProgress
		advance      time.Duration
		wantErr      bool
		active, more bool
	}{
		{name: "both receiving", p: MulticastProgress{Node: "a", Held: 1, Multicast: 1, WantCarousel: true}, active: true, more: true},
		{name: "a saw every piece", p: MulticastProgress{Node: "a", Held: 3, Multicast: 3}, active: true, more: true},
		{name: "b too: no more passes", p: MulticastProgress{Node: "b", Held: 2, Multicast: 2}, active: true, more: false},
		{name: "more pieces than the image", p: MulticastProgress{Node: "b", Held: 5}, wantErr: true, active: true},
		{name: "multicast and repaired over the image", p: MulticastProgress{Node: "b", Held: 4, Multicast: 3, Repaired: 2}, wantErr: true, active: true},
		{name: "unknown node", p: MulticastProgress{Node: "z", Held: 1}, wantErr: true, active: true},
		{name: "a done", p: MulticastProgress{Node: "a", Held: 4, Multicast: 3, Repaired: 1, RepairBytes: 9000, Done: true}, active: true},
		{name: "b silent too long: nobody listens", p: MulticastProgress{Node: "a", Held: 4, Multicast: 3, Repaired: 1, RepairBytes: 9000, Done: true},
			advance: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			if err := report(tc.p); (err != nil) != tc.wantErr {
				t.Fatalf("Report: %v, want error %v", err, tc.wantErr)
			}
			if got := m.wanted(tr, false); got != tc.active {
				t.Errorf("active = %v, want %v", got, tc.active)
			}
			if got := m.wanted(tr, true); got != tc.more {
				t.Errorf("another pass = %v, want %v", got, tc.more)
			}
		})
	}
	st := m.Status()
	if len(st) != 1 || len(st[0].Nodes) != 2 || !st[0].Nodes[0].Done || st[0].Nodes[0].RepairBytes != 9000 || st[0].Nodes[1].Alive {
		t.Errorf("status = %+v", st)
	}
	if tt := st[0].AsTransfer(); tt.Nodes[0].From[MulticastSource] != 3 || tt.Nodes[0].From[ServerSource] != 1 || tt.Nodes[0].Source != MulticastSource {
		t.Errorf("as a transfer: %+v", tt.Nodes[0])
	}
}
