package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// HashPieces reads r to the end and returns the hex sha256 of each pieceSize
// piece and of the whole stream, in one pass.
func HashPieces(ctx context.Context, r io.Reader, pieceSize int64) (pieces []string, whole string, err error) {
	if pieceSize <= 0 {
		return nil, "", fmt.Errorf("piece size %d", pieceSize)
	}
	all := sha256.New()
	buf := make([]byte, pieceSize)
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			p := sha256.Sum256(buf[:n])
			pieces = append(pieces, hex.EncodeToString(p[:]))
			all.Write(buf[:n])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, "", err
		}
	}
	return pieces, hex.EncodeToString(all.Sum(nil)), nil
}
