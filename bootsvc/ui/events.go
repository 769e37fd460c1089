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
//	event: resync         the inventory changed: reload
//
// Changes are gathered for s.batch and each node is sent once per message, so
// a storm of reports costs a few messages a second, not one per report. When
// the store says this stream missed changes (a burst outran it), the stream
// finds the nodes whose state moved since it last sent them and sends those,
// so the page never has to reload 10,000 rows for a burst.

// keepalive is how often an idle stream sends a comment, so proxies and the
// browser notice a dead connection.
const keepalive = 15 * time.Second

// maxRows bounds one message; more changed nodes go in several.
const maxRows = 1000

// pending collects what changed between two messages.
type pending struct {
	mu     sync.Mutex
	nodes  map[string]bool
	missed bool // the store dropped changes for this stream
	resync bool // the inventory changed
	wake   chan struct{}
}

func (p *pending) add(c store.Change) {
	p.mu.Lock()
	switch {
	case c.Kind == store.StateChanged && c.Node != "":
		p.nodes[c.Node] = true
	case c.Kind == store.Resync:
		p.missed = true
	default: // inventory changes: the page reads everything again
		p.resync = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take empties p.
func (p *pending) take() (names []string, missed, resync bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	missed, resync = p.missed, p.resync
	for n := range p.nodes {
		names = append(names, n)
	}
	p.nodes, p.missed, p.resync = map[string]bool{}, false, false
	return names, missed, resync
}

// sentStates remembers, per node, the state record a stream last sent (its
// last-report time), to tell after missed changes which nodes moved.
type sentStates map[string]time.Time

// moved adds to names every node whose record changed since it was sent.
func (s *Server) moved(r *http.Request, sent sentStates, names []string) ([]string, error) {
	states, err := s.deps.Store.States(r.Context())
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	for _, st := range states {
		if t, ok := sent[st.Name]; (!ok || !t.Equal(st.Updated)) && !have[st.Name] {
			names = append(names, st.Name)
		}
	}
	return names, nil
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
	sent := sentStates{}
	if states, err := s.deps.Store.States(ctx); err == nil {
		for _, st := range states {
			sent[st.Name] = st.Updated
		}
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
		names, missed, resync := p.take()
		if resync {
			if !send("resync", map[string]any{"now": s.now().UTC()}) {
				return
			}
			continue
		}
		var err error
		if missed {
			names, err = s.moved(r, sent, names)
		}
		sort.Strings(names)
		var rows []Row
		if err == nil {
			rows, err = s.rowsFor(ctx, names)
		}
		if err != nil {
			s.log.Warn("ui: event rows", "err", err)
			if !send("resync", map[string]any{"now": s.now().UTC()}) {
				return
			}
			continue
		}
		for len(rows) > 0 {
			n := min(len(rows), maxRows)
			for _, row := range rows[:n] {
				sent[row.Name] = row.Seen
			}
			if !send("nodes", map[string]any{"now": s.now().UTC(), "rows": rows[:n]}) {
				return
			}
			rows = rows[n:]
		}
	}
}
