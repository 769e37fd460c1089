package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/store"
)

// Event stream (GET /ui/events, text/event-stream):
//
//	retry: 2000           reconnect after 2 s (the browser's EventSource does)
//	event: hello          on every (re)connect: the page reloads its data
//	event: nodes          data: [Row, …], the nodes that changed since the last message
//	event: resync         the inventory changed or changes were missed: reload
//
// Changes are gathered for s.batch and each node is sent once per message, so
// a storm of reports costs a few messages a second, not one per report.

// keepalive is how often an idle stream sends a comment, so proxies and the
// browser notice a dead connection.
const keepalive = 15 * time.Second

// maxBatch bounds one message; a bigger burst tells the page to resync.
const maxBatch = 2000

// pending collects what changed between two messages.
type pending struct {
	mu     sync.Mutex
	nodes  map[string]bool
	resync bool
	wake   chan struct{}
}

func (p *pending) add(c store.Change) {
	p.mu.Lock()
	switch {
	case c.Kind == store.StateChanged && c.Node != "":
		p.nodes[c.Node] = true
		if len(p.nodes) > maxBatch {
			p.resync = true
		}
	default: // inventory changes and missed changes: read everything again
		p.resync = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take empties p.
func (p *pending) take() (names []string, resync bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resync = p.resync
	if !resync {
		for n := range p.nodes {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	p.nodes, p.resync = map[string]bool{}, false
	return names, resync
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ctx := r.Context()
	// Subscribe before hello: whatever changes after the page's reload
	// (which hello starts) reaches it as an event.
	changes := s.deps.Store.Watch(ctx)
	p := &pending{nodes: map[string]bool{}, wake: make(chan struct{}, 1)}
	go func() {
		for c := range changes {
			p.add(c)
		}
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data any) bool {
		b, err := json.Marshal(data)
		if err == nil {
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		}
		if err == nil {
			err = rc.Flush()
		}
		return err == nil
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || !send("hello", map[string]any{"now": s.now().UTC()}) {
		return
	}
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case <-p.wake:
		}
		// Let the burst gather, then send it as one message.
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.batch):
		}
		names, resync := p.take()
		if resync {
			if !send("resync", map[string]any{"now": s.now().UTC()}) {
				return
			}
			continue
		}
		if len(names) == 0 {
			continue
		}
		rows, err := s.rowsFor(ctx, names)
		if err != nil {
			s.log.Warn("ui: event rows", "err", err)
			if !send("resync", map[string]any{"now": s.now().UTC()}) {
				return
			}
			continue
		}
		if !send("nodes", map[string]any{"now": s.now().UTC(), "rows": rows}) {
			return
		}
	}
}
