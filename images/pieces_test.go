package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHashPieces(t *testing.T) {
	data := make([]byte, 10*1024+17)
	rand.New(rand.NewSource(1)).Read(data)
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	tests := []struct {
		name      string
		size      int
		pieceSize int64
	}{
		{"several pieces and a short last one", len(data), 1024},
		{"exact multiple", 8192, 1024},
		{"one short piece", 100, 1024},
		{"empty", 0, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := data[:tt.size]
			var want []string
			for off := 0; off < len(in); off += int(tt.pieceSize) {
				want = append(want, sum(in[off:min(off+int(tt.pieceSize), len(in))]))
			}
			pieces, whole, err := HashPieces(context.Background(), bytes.NewReader(in), tt.pieceSize)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, pieces); d != "" {
				t.Errorf("pieces (-want +got):\n%s", d)
			}
			if whole != sum(in) {
				t.Errorf("whole = %s, want %s", whole, sum(in))
			}
		})
	}
}
