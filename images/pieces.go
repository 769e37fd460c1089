package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// HashPieces reads r to the end and returns the hex sha256 of each pieceSize
// piece and of the whole stream, in one pass. The whole-stream hash and the
// piece hashes run on different goroutines, so on two cores the cost is about
// that of one sha256 pass.
func HashPieces(ctx context.Context, r io.Reader, pieceSize int64) (pieces []string, whole string, err error) {
	if pieceSize <= 0 {
		return nil, "", fmt.Errorf("piece size %d", pieceSize)
	}
	const inFlight = 3
	free := make(chan []byte, inFlight)
	for i := 0; i < inFlight; i++ {
		free <- make([]byte, pieceSize)
	}
	type piece struct {
		buf []byte
		n   int
	}
	toWhole, toPieces := make(chan piece, inFlight), make(chan piece, inFlight)
	wholeDone, piecesDone := make(chan string), make(chan []string)
	returned := make(chan []byte, 2*inFlight)
	go func() { // whole-stream hash
		h := sha256.New()
		for p := range toWhole {
			h.Write(p.buf[:p.n])
			returned <- p.buf
		}
		wholeDone <- hex.EncodeToString(h.Sum(nil))
	}()
	go func() { // per-piece hashes
		var out []string
		for p := range toPieces {
			s := sha256.Sum256(p.buf[:p.n])
			out = append(out, hex.EncodeToString(s[:]))
			returned <- p.buf
		}
		piecesDone <- out
	}()
	// A buffer goes back to the free list once both hashers are done with it.
	go func() {
		seen := map[*byte]bool{}
		for b := range returned {
			k := &b[:1][0]
			if seen[k] {
				delete(seen, k)
				free <- b
			} else {
				seen[k] = true
			}
		}
	}()
	var readErr error
	for readErr == nil {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		buf := <-free
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			toWhole <- piece{buf, n}
			toPieces <- piece{buf, n}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		readErr = err
	}
	close(toWhole)
	close(toPieces)
	whole, pieces = <-wholeDone, <-piecesDone
	close(returned)
	if readErr != nil {
		return nil, "", readErr
	}
	return pieces, whole, nil
}
