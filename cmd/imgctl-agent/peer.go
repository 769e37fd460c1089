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

// holder is the root image file being received and what of it is verified:
// pieces [0, held). Peers are served only verified bytes. Safe for
// concurrent use.
type holder struct {
	f         *os.File
	size      int64
	pieceSize int64
	pieces    int

	mu      sync.Mutex
	held    int
	from    map[string]int // pieces received per source
	changed chan struct{}  // closed and replaced when held grows
}

func newHolder(f *os.File, size, pieceSize int64, pieces, held int) *holder {
	return &holder{f: f, size: size, pieceSize: pieceSize, pieces: pieces, held: held, from: map[string]int{}, changed: make(chan struct{})}
}

// add marks the next piece verified, received from source.
func (h *holder) add(source string) {
	h.mu.Lock()
	h.held++
	h.from[source]++
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// state returns what is held and a copy of the per-source counts.
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
		held, ch := h.held, h.changed
		h.mu.Unlock()
		if held > piece {
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

// handler serves GET /root with one byte range; a range reaching into
// pieces not yet verified waits up to wait for them (that is the pipeline: a
// child asks for the piece its parent is receiving), then gets 503.
func (h *holder) handler(wait time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /root", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := parseRange(r.Header.Get("Range"), h.size)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if !h.waitFor(r.Context(), int(to/h.pieceSize), wait) {
			http.Error(w, "piece not held yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, h.size))
		w.Header().Set("Content-Length", strconv.FormatInt(to-from+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		io.Copy(w, io.NewSectionReader(h.f, from, to-from+1))
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
