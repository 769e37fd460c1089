package ui

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/imgctl/imgctl/internal/hostlist"
)

// Set is one artifact set as the images view shows it.
type Set struct {
	Name     string           `json:"name"`
	Digest   string           `json:"digest"`
	Current  bool             `json:"current"`
	Created  time.Time        `json:"created,omitzero"`
	Kernel   string           `json:"kernel_version,omitempty"`
	Size     int64            `json:"size"`               // all files of the set
	Files    map[string]int64 `json:"files"`              // kind → bytes
	Assigned string           `json:"assigned,omitempty"` // nodes whose image it is (current sets only), as a hostlist
	NAssign  int              `json:"assigned_count"`
	Booted   string           `json:"booted,omitempty"` // nodes whose last boot used this digest, as a hostlist
	NBooted  int              `json:"booted_count"`
}

func (s *Server) sets(ctx context.Context) ([]Set, error) {
	entries, err := s.deps.Artifacts.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("artifact sets: %w", err)
	}
	inv, err := s.deps.Store.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	states, err := s.deps.Store.States(ctx)
	if err != nil {
		return nil, fmt.Errorf("node states: %w", err)
	}
	byImage := map[string][]string{}
	for _, n := range inv.Nodes() {
		byImage[n.Image] = append(byImage[n.Image], n.Name)
	}
	byDigest := map[string][]string{}
	for _, st := range states {
		if st.ImageDigest != "" {
			byDigest[st.ImageDigest] = append(byDigest[st.ImageDigest], st.Name)
		}
	}
	out := make([]Set, 0, len(entries))
	for _, e := range entries {
		m := e.Manifest
		if m == nil {
			continue
		}
		set := Set{Name: m.Name, Digest: m.ImageDigest, Current: e.Current, Created: m.Created, Kernel: m.KernelVersion, Files: map[string]int64{}}
		for kind, a := range m.Artifacts {
			set.Files[kind] = a.Size
			set.Size += a.Size
		}
		if e.Current {
			set.Assigned, set.NAssign = hostlist.Compress(byImage[m.Name]), len(byImage[m.Name])
		}
		b := byDigest[m.ImageDigest]
		sort.Strings(b)
		set.Booted, set.NBooted = hostlist.Compress(b), len(b)
		out = append(out, set)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Created.After(out[j].Created)
	})
	return out, nil
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	l, err := s.sets(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, l)
}
