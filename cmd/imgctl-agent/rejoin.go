package main

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errNotJoined is the coordinator's 404 for a node it does not know: the
// boot service restarted without (the latest of) its saved state.
var errNotJoined = errors.New("coordinator does not know this node")

// currentSource is the source the fetch loop reads from now, for a resume.
type currentSource struct {
	mu   sync.Mutex
	name string
}

func (s *currentSource) set(name string) {
	s.mu.Lock()
	s.name = name
	s.mu.Unlock()
}

func (s *currentSource) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// resume registers this node again with what it holds and the source it
// is fetching from, which the coordinator keeps when it is still fit. The
// fetch loop goes on with its current source either way: should the
// coordinator have named another, the current one is unfit (dead, bad) and
// fails soon, and the next join follows the coordinator.
func (c *coordinator) resume(ctx context.Context, h *holder) error {
	held, _ := h.state()
	var s source
	return c.call(ctx, "resume", map[string]any{"transfer": c.transfer, "pieces": c.pieces, "piece_size": c.pieceSize,
		"node": c.o.node, "held": held, "peer_port": c.peerPort, "current": c.cur.get()}, &s)
}

// lingerServe keeps serving a finished node's pieces while the coordinator
// says children still fetch from it, until the linger bound. A coordinator
// that does not answer (the boot service restarting) is no reason to stop
// at once: children may be mid-piece, so the node serves on and asks again,
// for a grace long enough for a restart, not for an outage (the node's own
// boot waits meanwhile).
func (c *coordinator) lingerServe(ctx context.Context, h *holder, linger time.Duration) {
	deadline := time.Now().Add(linger)
	grace := max(4*c.o.stall, 30*time.Second)
	var failing time.Time // when the coordinator stopped answering
	for time.Now().Before(deadline) && ctx.Err() == nil {
		serve, err := c.progress(ctx, h)
		switch {
		case err == nil && !serve:
			return
		case err == nil:
			failing = time.Time{}
		case failing.IsZero():
			failing = time.Now()
		case time.Since(failing) > grace:
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}
