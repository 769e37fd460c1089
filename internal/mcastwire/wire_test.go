package mcastwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	id, err := ImageID("sha256:0123456789abcdef00")
	if err != nil {
		t.Fatal(err)
	}
	if id != [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef} {
		t.Fatalf("ImageID = %x", id)
	}
	data := bytes.Repeat([]byte{7}, MaxData)
	for _, h := range []Header{
		{Image: id, Piece: 0, Offset: 0, Pass: 0},
		{Image: id, Piece: 63, Offset: 3 * MaxData, Pass: 9},
		{Image: id, Piece: 1 << 31, Offset: 3048 * MaxData, Pass: 1 << 30},
	} {
		buf := make([]byte, MaxDatagram)
		b := Encode(buf, h, data[:100])
		got, d, err := Decode(b)
		if err != nil || got != h || !bytes.Equal(d, data[:100]) {
			t.Errorf("Decode(Encode(%+v)) = %+v, %d bytes, %v", h, got, len(d), err)
		}
	}
	if b := Encode(make([]byte, MaxDatagram), Header{Image: id}, data); len(b) != MaxDatagram {
		t.Errorf("a full chunk is %d bytes, want %d", len(b), MaxDatagram)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Encode(make([]byte, MaxDatagram), Header{Offset: MaxData}, []byte("x"))
	for _, tc := range []struct {
		name    string
		b       []byte
		notOurs bool
	}{
		{"empty", nil, true},
		{"short", good[:HeaderSize-1], true},
		{"other magic", append([]byte("XX"), good[2:]...), true},
		{"other version", append([]byte{'I', 'M', 9}, good[3:]...), true},
		{"too long", append(append([]byte{}, good...), make([]byte, MaxDatagram)...), false},
		{"odd offset", Encode(make([]byte, MaxDatagram), Header{Offset: 5}, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode(tc.b)
			if err == nil || errors.Is(err, ErrNotOurs) != tc.notOurs {
				t.Errorf("Decode = %v, want error (not ours: %v)", err, tc.notOurs)
			}
		})
	}
	if _, err := ImageID("sha256:xyz"); err == nil {
		t.Error("ImageID of a bad digest: no error")
	}
}

func TestChunks(t *testing.T) {
	const piece = 4 << 20
	n := Chunks(piece)
	if n != 3049 {
		t.Fatalf("Chunks(4 MiB) = %d", n)
	}
	total := 0
	for i := 0; i < n; i++ {
		total += ChunkLen(piece, i)
	}
	if total != piece || ChunkLen(piece, n-1) != piece-(n-1)*MaxData {
		t.Errorf("chunks sum to %d, last %d", total, ChunkLen(piece, n-1))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(make([]byte, MaxDatagram), Header{Piece: 3, Offset: MaxData}, []byte("data")))
	f.Add([]byte("IM\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, d, err := Decode(b)
		if err == nil && (len(d) > MaxData || h.Offset%MaxData != 0) {
			t.Fatalf("accepted %+v with %d bytes", h, len(d))
		}
	})
}
