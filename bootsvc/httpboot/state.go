package httpboot

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// maxStateBody bounds a phone-home body.
const maxStateBody = 64 << 10

// handleState records a node's phone-home.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	n, _, ok := s.authorize(w, r, "state")
	if !ok {
		return
	}
	var rep nodestate.Report
	dec := json.NewDecoder(io.LimitReader(r.Body, maxStateBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		s.log.Warn("state: bad body", "node", n.Name, "peer", sourceIP(r), "err", err)
		http.Error(w, "bad phone-home body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.deps.Store.Report(r.Context(), n.Name, rep); err != nil {
		s.log.Warn("state: refused", "node", n.Name, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.log.Info("node state", "node", n.Name, "state", rep.State, "detail", rep.Detail, "reason", rep.Reason)
	w.WriteHeader(http.StatusNoContent)
}

// record notes a server-side state, logging (not failing) on error.
func (s *Server) record(r *http.Request, node string, rep nodestate.Report) {
	if err := s.deps.Store.Report(r.Context(), node, rep); err != nil {
		s.log.Error("record node state", "node", node, "err", err)
	}
}

// admin wraps h with the bearer-token check; without an admin token the API is off.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.cfg.AdminToken == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			s.log.Warn("admin: refused", "path", r.URL.Path, "peer", sourceIP(r))
			w.Header().Set("WWW-Authenticate", `Bearer realm="imgctl"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) handleAdminNodes(w http.ResponseWriter, r *http.Request) {
	states, err := s.deps.Store.States(r.Context())
	if err != nil {
		http.Error(w, "node states: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(states)
}

func (s *Server) handleAdminReload(w http.ResponseWriter, r *http.Request) {
	if s.deps.Reload == nil {
		http.Error(w, "reload not available", http.StatusNotImplemented)
		return
	}
	if err := s.deps.Reload(r.Context()); err != nil {
		s.log.Error("admin: reload failed", "err", err)
		http.Error(w, "reload: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if err := s.overlays.clear(); err != nil {
		s.log.Warn("admin: clearing overlay cache", "err", err)
	}
	s.log.Info("admin: reloaded")
	w.WriteHeader(http.StatusNoContent)
}
