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

// currentSources is, per stripe, the source the fetch loop reads from
// now, for a resume.
type currentSources struct {
	mu    sync.Mutex
	names map[int]string
}

func (s *currentSources) set(stripe int, name string) {
	s.mu.Lock()
	if s.names == nil {
		s.names = map[int]string{}
	}
	s.names[stripe] = name
	s.mu.Unlock()
}

func (s *currentSources) get(stripe int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[stripe]
}

// resume registers this node again with what it holds and, per stripe,
// the source it is fetching from, which the coordinator keeps when it is
// still fit. The fetch loops go on with their current sources either way:
// should the coordinator have named another, the current one is unfit
// (dead, bad) and fails soon, and the next join follows the coordinator.
func (c *coordinator) resume(ctx context.Context, h *holder) error {
	held, _ := h.state()
	stripes := c.stripes
	if len(stripes) == 0 {
		stripes = [][2]int{{0, c.pieces}}
	}
	for s, r := range stripes {
		var src source
		if err := c.call(ctx, "resume", map[string]any{"transfer": c.transfer, "pieces": c.pieces, "piece_size": c.pieceSize,
			"stripes": len(c.stripes), "stripe": s, "stripe_held": h.run(r[0], r[1]),
			"node": c.o.node, "held": held, "peer_port": c.peerPort, "current": c.cur.get(s)}, &src); err != nil {
			return err
		}
	}
	return nil
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
