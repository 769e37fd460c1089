package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// holder is the root image file being received and which of its pieces
// are verified. Peers are served only verified bytes. Safe for concurrent
// use.
type holder struct {
	f         *os.File
	size      int64
	pieceSize int64
	pieces    int

	mu      sync.Mutex
	have    []bool
	held    int
	from    map[string]int // pieces received per source
	changed chan struct{}  // closed and replaced when a piece is added
}

// newHolder: pieces [0, held) are verified already.
func newHolder(f *os.File, size, pieceSize int64, pieces, held int) *holder {
	h := &holder{f: f, size: size, pieceSize: pieceSize, pieces: pieces, held: held, have: make([]bool, pieces),
		from: map[string]int{}, changed: make(chan struct{})}
	for i := range held {
		h.have[i] = true
	}
	return h
}

// add marks the first piece not yet held verified, received from source
// (one stripe: pieces arrive in order).
func (h *holder) add(source string) {
	h.mu.Lock()
	i := 0
	for i < h.pieces && h.have[i] {
		i++
	}
	h.mu.Unlock()
	h.addPiece(i, source)
}

// addPiece marks piece i verified, received from source.
func (h *holder) addPiece(i int, source string) {
	h.mu.Lock()
	if i < h.pieces && !h.have[i] {
		h.have[i] = true
		h.held++
		h.from[source]++
	}
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// run returns how many pieces are held from piece a on, up to b.
func (h *holder) run(a, b int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for a+n < b && h.have[a+n] {
		n++
	}
	return n
}

// state returns how many pieces are held and a copy of the per-source counts.
func (h *holder) state() (int, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	from := make(map[string]int, len(h.from))
	for k, v := range h.from {
		from[k] = v
	}
	return h.held, from
}

// waitFor waits until piece is verified, for at most d.
func (h *holder) waitFor(ctx context.Context, piece int, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		h.mu.Lock()
		has, ch := h.have[piece], h.changed
		h.mu.Unlock()
		if has {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// handler serves GET /root with one byte range, streamed piece by piece: a
// piece not verified yet is waited for up to wait (that is the pipeline: a
// child asks for the whole rest of a stripe and gets each piece as soon as
// its parent verified it). A first piece that does not come in time gets
// 503; a later one ends the response early, and the child asks again from
// where it stopped.
func (h *holder) handler(wait time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /root", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := parseRange(r.Header.Get("Range"), h.size)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if !h.waitFor(r.Context(), int(from/h.pieceSize), wait) {
			http.Error(w, "piece not held yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, h.size))
		w.Header().Set("Content-Length", strconv.FormatInt(to-from+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		flusher, _ := w.(http.Flusher)
		for off := from; off <= to; {
			p := off / h.pieceSize
			if !h.waitFor(r.Context(), int(p), wait) {
				return // a short body: the child re-asks
			}
			end := min(to, (p+1)*h.pieceSize-1)
			if _, err := io.Copy(w, io.NewSectionReader(h.f, off, end-off+1)); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			off = end + 1
		}
	})
	return mux
}

// parseRange parses "bytes=A-B" (one range; B may be omitted).
func parseRange(s string, size int64) (int64, int64, error) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 || strings.Contains(spec, ",") {
		return 0, 0, fmt.Errorf("range %q: want one bytes=A-B", s)
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("range %q: %w", s, err)
	}
	to := size - 1
	if b != "" {
		if to, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("range %q: %w", s, err)
		}
	}
	if from < 0 || from > to || to >= size {
		return 0, 0, fmt.Errorf("range %q: outside 0-%d", s, size-1)
	}
	return from, to, nil
}
