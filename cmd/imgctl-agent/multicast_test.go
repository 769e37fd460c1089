package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// mcastImage is a small image cut into pieces of a few chunks each.
type mcastImage struct {
	data      []byte
	pieceSize int64
	want      []string
	id        [8]byte
}

func newMcastImage(t *testing.T, size int, pieceSize int64) mcastImage {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	img := mcastImage{data: make([]byte, size), pieceSize: pieceSize, id: [8]byte{9, 9, 9, 9, 1, 2, 3, 4}}
	for i := range img.data {
		img.data[i] = byte(r.Uint32())
	}
	for off := int64(0); off < int64(size); off += pieceSize {
		sum := sha256.Sum256(img.data[off:min(off+pieceSize, int64(size))])
		img.want = append(img.want, hex.EncodeToString(sum[:]))
	}
	return img
}

// datagrams are the image's chunks in carousel order, one pass.
func (img mcastImage) datagrams(pass uint32) []mcastwire.Header {
	var out []mcastwire.Header
	for p := range img.want {
		n := min(img.pieceSize, int64(len(img.data))-int64(p)*img.pieceSize)
		for k := 0; k < mcastwire.Chunks(n); k++ {
			out = append(out, mcastwire.Header{Image: img.id, Piece: uint32(p), Offset: uint32(k * mcastwire.MaxData), Pass: pass})
		}
	}
	return out
}

func (img mcastImage) chunkData(h mcastwire.Header) []byte {
	off := int64(h.Piece)*img.pieceSize + int64(h.Offset)
	end := min(off+mcastwire.MaxData, (int64(h.Piece)+1)*img.pieceSize, int64(len(img.data)))
	return img.data[off:end]
}

// server serves the image with Range support (multipart too, as
// http.ServeContent does in `imgctl serve`) and counts body bytes.
func (img mcastImage) server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &mcastCountWriter{ResponseWriter: w, n: &sent}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(img.data))
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

type mcastCountWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *mcastCountWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func TestAssembly(t *testing.T) {
	const pieceSize = 8 * mcastwire.MaxData // 8 chunks a piece
	img := newMcastImage(t, 5*pieceSize+3000, pieceSize)
	all := img.datagrams(0)
	for _, tc := range []struct {
		name string
		// feed returns the datagrams the node receives, and may corrupt
		// the data of some (by index into the returned slice).
		feed    func() []mcastwire.Header
		corrupt map[int]bool
		// want: pieces completed by multicast and by repair, and whether
		// the repair fetched only the missing chunks (bytes well under a
		// piece per repaired piece).
		multicast, repaired int
		small               bool
		bad                 int
	}{
		{name: "lossless", feed: func() []mcastwire.Header { return all }, multicast: 6},
		{name: "loss is repaired chunk by chunk", feed: func() []mcastwire.Header {
			var out []mcastwire.Header
			for i, h := range all {
				if i%5 != 3 { // 20% loss, every piece hit
					out = append(out, h)
				}
			}
			return out
		}, multicast: 1, repaired: 5, small: true}, // the short last piece loses nothing
		{name: "late join completes from the next pass", feed: func() []mcastwire.Header {
			return append(append([]mcastwire.Header{}, all[20:]...), img.datagrams(1)[:20]...)
		}, multicast: 6},
		{name: "late join without a second pass repairs the start", feed: func() []mcastwire.Header {
			return all[20:] // pieces 0 and 1 never seen, piece 2 half
		}, multicast: 3, repaired: 3},
		{name: "a corrupted piece is refetched whole", feed: func() []mcastwire.Header { return all },
			corrupt: map[int]bool{10: true}, multicast: 5, repaired: 1, bad: 1},
		{name: "duplicates and other images are ignored", feed: func() []mcastwire.Header {
			other := mcastwire.Header{Image: [8]byte{1}, Piece: 0}
			return append(append([]mcastwire.Header{other}, all[:9]...), all...)
		}, multicast: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "root.img")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			staging := tempFile(t)
			a := newAssembly(f, staging, int64(len(img.data)), pieceSize, img.want, img.id)
			for i, h := range tc.feed() {
				d := img.chunkData(h)
				if h.Image != img.id {
					d = []byte("other image")
				}
				if tc.corrupt[i] {
					d = append([]byte{}, d...)
					d[0] ^= 0xff
				}
				if err := a.chunk(h, d); err != nil {
					t.Fatal(err)
				}
			}
			// Before repair, the output holds verified pieces and nothing else.
			got, _ := os.ReadFile(out)
			for p := range img.want {
				off, end := int64(p)*pieceSize, min(int64(p+1)*pieceSize, int64(len(img.data)))
				held := a.state[p] == pieceHeld
				if held && !bytes.Equal(got[off:end], img.data[off:end]) || !held && bytes.ContainsFunc(got[off:end], func(r rune) bool { return r != 0 }) {
					t.Errorf("piece %d (held %v): output holds bytes that are not a verified piece", p, held)
				}
			}
			srv, sent := img.server(t)
			buf := make([]byte, pieceSize)
			for p := range img.want {
				if err := a.repair(context.Background(), srv.URL, p, buf); err != nil {
					t.Fatal(err)
				}
			}
			p := a.progress()
			if diff := cmp.Diff(mcastProgress{Held: 6, Multicast: tc.multicast, Repaired: tc.repaired, RepairBytes: sent.Load(), Done: true}, p); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
			if a.badPieces != tc.bad {
				t.Errorf("bad pieces %d, want %d", a.badPieces, tc.bad)
			}
			if tc.small && p.RepairBytes > int64(tc.repaired)*pieceSize/2 {
				t.Errorf("repair took %d bytes for %d pieces of %d: not chunk by chunk", p.RepairBytes, tc.repaired, pieceSize)
			}
			if tc.repaired > 0 && p.RepairBytes == 0 {
				t.Error("repair bytes not counted")
			}
			got, _ = os.ReadFile(out)
			if !bytes.Equal(got, img.data) {
				t.Error("assembled image differs from the original")
			}
			if err := wholeMatches(f, int64(len(img.data)), hexSum(img.data)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRepairServerCorrupt: a server that serves wrong bytes for a piece is
// not believed: the piece stays unheld and the error says mismatch.
func TestRepairServerCorrupt(t *testing.T) {
	const pieceSize = 4 * mcastwire.MaxData
	img := newMcastImage(t, 2*pieceSize, pieceSize)
	bad := append([]byte{}, img.data...)
	bad[10] ^= 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
	}))
	defer srv.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "root.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := newAssembly(f, tempFile(t), int64(len(img.data)), pieceSize, img.want, img.id)
	err = a.repair(context.Background(), srv.URL, 0, make([]byte, pieceSize))
	if _, ok := err.(interface{ Unwrap() error }); !ok || a.progress().Held != 0 || a.state[0] == pieceHeld {
		t.Fatalf("repair from a corrupt server: %v, held %d", err, a.progress().Held)
	}
	if err := a.repair(context.Background(), srv.URL, 1, make([]byte, pieceSize)); err != nil || a.progress().Held != 1 {
		t.Fatalf("the good piece: %v", err)
	}
}

func TestRuns(t *testing.T) {
	bm := []uint64{0b1011_0001}
	if diff := cmp.Diff([][2]int{{0, 1}, {4, 6}, {7, 8}}, runs(bm, 10, true)); diff != "" {
		t.Errorf("set runs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]int{{1, 4}, {6, 7}, {8, 10}}, runs(bm, 10, false)); diff != "" {
		t.Errorf("clear runs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]int{{0, 3}}, runs(nil, 3, false)); diff != "" {
		t.Errorf("nil bitmap (-want +got):\n%s", diff)
	}
}

// tempFile is an empty file that lives as long as the test.
func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "staging")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
