package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/hostlist"
)

// Row is one node as the nodes table shows it: the inventory's view merged
// with the last boot state. Times are UTC; the page measures "time in state"
// against the server's clock (NodeList.Now).
type Row struct {
	Name    string                        `json:"name"`
	Groups  []string                      `json:"groups,omitempty"`
	Image   string                        `json:"image,omitempty"`
	Mode    string                        `json:"mode,omitempty"`
	State   string                        `json:"state"`             // "" when the node never reported
	Since   time.Time                     `json:"since,omitzero"`    // when it entered State
	Seen    time.Time                     `json:"seen,omitzero"`     // its last report
	Phases  map[nodestate.State]time.Time `json:"phases,omitempty"`  // the boot under way
	Digest  string                        `json:"digest,omitempty"`  // the image digest it booted
	Current string                        `json:"current,omitempty"` // its image's current digest
	Stale   bool                          `json:"stale,omitempty"`
	Detail  string                        `json:"detail,omitempty"`
	Reason  string                        `json:"reason,omitempty"`
}

// NodeList is the answer of GET /ui/api/nodes.
type NodeList struct {
	Now    time.Time `json:"now"`
	Groups []string  `json:"groups"` // every group, for the filter
	Nodes  []Row     `json:"nodes"`
}

// digests looks up images' current digests, once per image per call.
type digests struct {
	a     Artifacts
	cache map[string]string
}

func (s *Server) digests() *digests { return &digests{a: s.deps.Artifacts, cache: map[string]string{}} }

func (d *digests) current(image string) string {
	if image == "" {
		return ""
	}
	if v, ok := d.cache[image]; ok {
		return v
	}
	v := ""
	if e, err := d.a.Current(image); err == nil && e.Manifest != nil {
		v = e.Manifest.ImageDigest
	}
	d.cache[image] = v
	return v
}

// makeRow merges node n with its state st (zero when it never reported).
func makeRow(n inventory.Node, st nodestate.Node, current string) Row {
	r := Row{Name: n.Name, Groups: n.Groups, Image: n.Image, Mode: string(n.Mode), State: string(st.State),
		Seen: st.Updated, Phases: st.Phases, Digest: st.ImageDigest, Current: current,
		Stale: nodestate.Stale(st, current), Detail: st.Detail, Reason: st.Reason}
	if t, ok := st.Phases[st.State]; ok {
		r.Since = t
	} else {
		r.Since = st.Updated
	}
	return r
}

// list builds the rows of every inventory node hostlist selects ("" = all),
// in inventory order.
func (s *Server) list(ctx context.Context, expr string) (NodeList, error) {
	inv, err := s.deps.Store.Snapshot(ctx)
	if err != nil {
		return NodeList{}, fmt.Errorf("inventory: %w", err)
	}
	states, err := s.deps.Store.States(ctx)
	if err != nil {
		return NodeList{}, fmt.Errorf("node states: %w", err)
	}
	byName := make(map[string]nodestate.Node, len(states))
	for _, st := range states {
		byName[st.Name] = st
	}
	var want map[string]bool
	if expr != "" {
		names, err := hostlist.Expand(expr)
		if err != nil {
			return NodeList{}, &badRequest{fmt.Errorf("hostlist %q: %w", expr, err)}
		}
		want = make(map[string]bool, len(names))
		for _, n := range names {
			want[n] = true
		}
	}
	d := s.digests()
	out := NodeList{Now: s.now().UTC(), Groups: []string{}, Nodes: make([]Row, 0, inv.Len())}
	for _, g := range inv.Groups() {
		out.Groups = append(out.Groups, g.Name)
	}
	for _, n := range inv.Nodes() {
		if want != nil && !want[n.Name] {
			continue
		}
		out.Nodes = append(out.Nodes, makeRow(n, byName[n.Name], d.current(n.Image)))
	}
	return out, nil
}

// badRequest marks an error the client caused.
type badRequest struct{ err error }

func (e *badRequest) Error() string { return e.err.Error() }
func (e *badRequest) Unwrap() error { return e.err }

// fail answers err: 400 for the client's mistakes, 503 for the store's.
func fail(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// nodes answers GET /ui/api/nodes?hostlist=EXPR. Group, state and sorting
// are the page's (it holds the rows and re-sorts them as events arrive).
func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	l, err := s.list(r.Context(), r.URL.Query().Get("hostlist"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, l)
}

// rowsFor builds the rows of the named nodes, skipping nodes the inventory
// no longer has.
func (s *Server) rowsFor(ctx context.Context, names []string) ([]Row, error) {
	inv, err := s.deps.Store.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	d := s.digests()
	rows := make([]Row, 0, len(names))
	for _, name := range names {
		n, ok := inv.Node(name)
		if !ok {
			continue
		}
		st, err := s.deps.Store.State(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("state of %s: %w", name, err)
		}
		rows = append(rows, makeRow(n, st, d.current(n.Image)))
	}
	return rows, nil
}
