package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// errBehind is a peer's 503: it does not hold the piece yet.
var errBehind = errors.New("source does not hold the piece yet")

// minPerStall is the least a source must deliver per stall period: a link
// that trickles (a few bytes a second) is as good as dead.
const minPerStall = 64 << 10

// stalled names a stall for what it is rather than "context canceled".
func stalled(err error, timedOut *atomic.Bool) error {
	if timedOut.Load() {
		return fmt.Errorf("source stalled (under %d KiB in a stall period): %w", minPerStall>>10, err)
	}
	return err
}

// errShort is a response that ended before the range did: a peer that
// stopped waiting for a piece it does not hold yet, or a dying source.
var errShort = errors.New("response ended early")

// streamStalling fetches bytes [from, to] of u in one request and hands
// them to piece unit by unit (the last may be shorter), as they arrive;
// piece's error ends the stream. The request fails when fewer than
// minPerStall bytes arrive in a stall period.
func streamStalling(ctx context.Context, u string, from, to, unit int64, buf []byte, stall time.Duration, piece func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got atomic.Int64
	var timedOut atomic.Bool
	go func() {
		tick := time.NewTicker(stall)
		defer tick.Stop()
		last := int64(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := got.Load()
			if n-last < minPerStall {
				timedOut.Store(true)
				cancel()
				return
			}
			last = n
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return stalled(err, &timedOut)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return fmt.Errorf("GET %s: %w", u, errBehind)
	}
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	for off := from; off <= to; {
		want := min(unit, to-off+1)
		n := 0
		for int64(n) < want {
			k, err := resp.Body.Read(buf[n:want])
			n += k
			got.Add(int64(k))
			if err == io.EOF && int64(n) < want {
				return fmt.Errorf("GET %s: %d bytes short at %d: %w", u, want-int64(n), off, errShort)
			}
			if err != nil && err != io.EOF {
				if errors.Is(err, io.ErrUnexpectedEOF) && !timedOut.Load() {
					return fmt.Errorf("GET %s: at %d: %w", u, off, errShort)
				}
				return stalled(err, &timedOut)
			}
		}
		if err := piece(buf[:want]); err != nil {
			return err
		}
		off += want
	}
	return nil
}
