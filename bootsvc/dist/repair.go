package dist

import (
	"context"
	"errors"
	"net"
	"net/url"
	"syscall"
	"time"
)

// probeTimeout bounds the check of a failed source: a refusal comes back
// within a round trip; anything slower is a stall, which the node's own
// stall period already handled.
const probeTimeout = 500 * time.Millisecond

// markGone checks each peer a joining node reports failed: when its piece
// port refuses connections, its agent is gone (killed, crashed) and it is
// marked left at once. Otherwise it would keep its slot in its parent's
// fan-out for two stall periods, and its orphans could not take that slot,
// the best repair there is (the parent is ahead of them by about a piece),
// but would be handed a peer far behind or the server. A node marked so by
// mistake is alive again with its next report.
func (a *API) markGone(ctx context.Context, req JoinRequest) {
	for _, f := range req.Failed {
		u := a.c.peerURL(req.Transfer, f)
		if u == "" || !refused(ctx, u) {
			continue
		}
		if a.c.Leave(req.Transfer, f) == nil {
			a.log.Info("failed source refuses connections; gone", "image", req.Transfer, "node", req.Node, "source", f)
		}
	}
}

// peerURL is a member's piece URL, "" for the server or a stranger.
func (c *Coordinator) peerURL(transfer, node string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.transfers[transfer]; t != nil {
		if m := t.nodes[node]; m != nil && !m.left {
			return m.url
		}
	}
	return ""
}

// refused: a TCP connection to u's host is actively refused.
func refused(ctx context.Context, u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.Host)
	if err == nil {
		conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
