package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imgctl/imgctl/internal/mcastwire"
)

// maxRanges caps the ranges of one repair request; a piece missing more
// runs than that is fetched whole (the multipart headers would cost more
// than the chunks already held save).
const maxRanges = 64

// repair completes piece p from the boot server at url with HTTP Range
// requests: only the missing chunks when some are staged, the whole piece
// when none are or it failed verification. The result is verified before it
// is written; a repaired piece that still mismatches is fetched whole once.
// buf holds one piece.
func (a *assembly) repair(ctx context.Context, url string, p int, buf []byte) error {
	a.mu.Lock()
	if a.state[p] == pieceHeld {
		a.mu.Unlock()
		return nil
	}
	if a.cur == p {
		if err := a.stage(); err != nil {
			a.mu.Unlock()
			return err
		}
	}
	prev := a.state[p]
	a.state[p] = pieceRepairing
	n := a.pieceLen(p)
	whole := a.refetch[p] || a.got[p] == 0
	var missing [][2]int
	if !whole {
		missing = runs(a.have[p], mcastwire.Chunks(n), false)
		whole = len(missing) > maxRanges
	}
	a.mu.Unlock()
	fail := func(err error) error {
		a.mu.Lock()
		a.state[p] = prev
		a.mu.Unlock()
		return fmt.Errorf("repair piece %d: %w", p, err)
	}

	base := int64(p) * a.pieceSize
	piece := buf[:n]
	var spent int64
	if !whole {
		// The receiver leaves a piece under repair alone: the staged bytes
		// cannot change while we read and complete them.
		if _, err := a.staging.ReadAt(piece, base); err != nil && err != io.EOF {
			return fail(err)
		}
		var ranges [][2]int64
		for _, r := range missing {
			ranges = append(ranges, [2]int64{int64(r[0]) * mcastwire.MaxData, min(int64(r[1])*mcastwire.MaxData, n) - 1})
		}
		k, err := getRanges(ctx, url, base, ranges, piece)
		spent += k
		if err != nil {
			return fail(err)
		}
	}
	if whole || !matches(piece, a.want[p]) {
		if !whole {
			fmt.Fprintf(os.Stderr, "imgctl-agent: piece %d fails verification after repair; fetching it whole\n", p)
		}
		k, err := getRanges(ctx, url, base, [][2]int64{{0, n - 1}}, piece)
		spent += k
		if err != nil {
			return fail(err)
		}
		if !matches(piece, a.want[p]) {
			a.mu.Lock()
			a.repairBytes += spent
			a.badPieces++
			a.mu.Unlock()
			return fail(errMismatch{fmt.Sprintf("piece %d from %s: sha256 does not match the manifest", p, url)})
		}
	}
	if _, err := a.f.WriteAt(piece, base); err != nil {
		return fail(err)
	}
	a.mu.Lock()
	a.state[p], a.have[p], a.refetch[p] = pieceHeld, nil, false
	a.held++
	a.repaired++
	a.repairBytes += spent
	a.signal()
	a.mu.Unlock()
	return nil
}

func matches(piece []byte, want string) bool {
	sum := sha256.Sum256(piece)
	return hex.EncodeToString(sum[:]) == want
}

// getRanges fetches bytes base+r[0]..base+r[1] of url for each range into
// dst[r[0]:r[1]+1] with one request (multipart/byteranges when several),
// and returns the body bytes it read.
func getRanges(ctx context.Context, url string, base int64, ranges [][2]int64, dst []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	specs := make([]string, len(ranges))
	for i, r := range ranges {
		specs[i] = fmt.Sprintf("%d-%d", base+r[0], base+r[1])
	}
	req.Header.Set("Range", "bytes="+strings.Join(specs, ","))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body := &countingReader{r: resp.Body}
	place := func(cr string, r io.Reader) error {
		from, to, err := contentRange(cr)
		if err != nil {
			return err
		}
		from, to = from-base, to-base
		if from < 0 || to >= int64(len(dst)) || from > to {
			return fmt.Errorf("GET %s: range %s outside the piece", url, cr)
		}
		_, err = io.ReadFull(r, dst[from:to+1])
		return err
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		return body.n, place(resp.Header.Get("Content-Range"), body)
	}
	mr := multipart.NewReader(body, params["boundary"])
	parts := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return body.n, fmt.Errorf("GET %s: %w", url, err)
		}
		if err := place(part.Header.Get("Content-Range"), part); err != nil {
			return body.n, err
		}
		parts++
	}
	if parts != len(ranges) {
		return body.n, fmt.Errorf("GET %s: %d of %d ranges", url, parts, len(ranges))
	}
	return body.n, nil
}

// contentRange parses "bytes A-B/SIZE".
func contentRange(s string) (int64, int64, error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	ab, _, ok2 := strings.Cut(spec, "/")
	a, b, ok3 := strings.Cut(ab, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("content range %q", s)
	}
	from, err1 := strconv.ParseInt(a, 10, 64)
	to, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("content range %q", s)
	}
	return from, to, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}
