package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/imgctl/imgctl/images"
)

// slowReader returns at most n bytes per Read, so copies cross piece
// boundaries at odd offsets.
type slowReader struct {
	r io.Reader
	n int
}

func (s slowReader) Read(b []byte) (int, error) { return s.r.Read(b[:min(len(b), s.n)]) }

// TestPieceCheck streams data through copyHashing into a pieceCheck and
// compares with images.HashPieces, the hashing publish and the boot server
// use: every size around piece boundaries, reads smaller and larger than a
// piece, and one changed byte.
func TestPieceCheck(t *testing.T) {
	const piece = 1000
	data := bytes.Repeat([]byte("imgctl pieces "), 700) // 9,800 bytes
	for _, tc := range []struct {
		name     string
		size     int
		read     int
		flip     int // byte index to change after the manifest was made, -1: none
		wantFail bool
	}{
		{"empty", 0, 4096, -1, false},
		{"one byte", 1, 4096, -1, false},
		{"one piece exactly", piece, 4096, -1, false},
		{"piece and a byte", piece + 1, 7, -1, false},
		{"many pieces, small reads", 9800, 333, -1, false},
		{"many pieces, big reads", 9000, 1 << 20, -1, false},
		{"changed byte in the last piece", 9800, 333, 9799, true},
		{"changed byte at a boundary", 9800, 1 << 20, piece, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := append([]byte(nil), data[:tc.size]...)
			want, _, err := images.HashPieces(context.Background(), bytes.NewReader(body), piece)
			if err != nil {
				t.Fatal(err)
			}
			if tc.flip >= 0 {
				body[tc.flip] ^= 1
			}
			pc, err := newPieceCheck(piece, want)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := copyHashing(&out, pc, slowReader{bytes.NewReader(body), tc.read})
			if err != nil || n != int64(tc.size) || !bytes.Equal(out.Bytes(), body) {
				t.Fatalf("copy: %d bytes, %v; copied intact %v", n, err, bytes.Equal(out.Bytes(), body))
			}
			err = pc.check()
			if (err != nil) != tc.wantFail {
				t.Fatalf("check: %v, want failure %v", err, tc.wantFail)
			}
		})
	}
	if _, err := newPieceCheck(0, nil); err == nil {
		t.Error("piece size 0 accepted")
	}
}

// TestCopyHashingDigest checks the whole-blob path: the digest hasher sees
// exactly the bytes written.
func TestCopyHashingDigest(t *testing.T) {
	body := strings.Repeat("x", 3<<20+5)
	h := sha256.New()
	var out bytes.Buffer
	if _, err := copyHashing(&out, h, slowReader{strings.NewReader(body), 1 << 19}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if got := hex.EncodeToString(h.Sum(nil)); got != hex.EncodeToString(sum[:]) || out.String() != body {
		t.Fatalf("digest %s, want %x", got, sum)
	}
}
