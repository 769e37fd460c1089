package dist

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/internal/logging"
)

// MulticastPrefix is where the multicast API is mounted (beside the tree
// coordinator's routes).
const MulticastPrefix = Prefix + "multicast/"

// MulticastAPI serves the receivers' join and progress reports and the
// status; node requests carry the node's token as the tree API's do.
type MulticastAPI struct {
	m    *Multicast
	auth *API // its token check
	log  *slog.Logger
}

// NewMulticastAPI serves m; tokens nil skips the token check (tests).
func NewMulticastAPI(m *Multicast, nodes Nodes, tokens *nodetoken.Tokens, log *slog.Logger) *MulticastAPI {
	return &MulticastAPI{m: m, auth: NewAPI(nil, nodes, tokens, log), log: logging.OrDiscard(log).With("server", "multicast")}
}

// Handler serves the routes under MulticastPrefix.
func (a *MulticastAPI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+MulticastPrefix+"join", a.handleJoin)
	mux.HandleFunc("POST "+MulticastPrefix+"progress", a.handleProgress)
	mux.HandleFunc("GET "+MulticastPrefix+"status", func(w http.ResponseWriter, _ *http.Request) { reply(w, a.m.Status()) })
	return mux
}

func (a *MulticastAPI) handleJoin(w http.ResponseWriter, r *http.Request) {
	var j MulticastJoin
	if !decode(w, r, &j) {
		return
	}
	n, ok := a.auth.auth(w, r, j.Node)
	if !ok {
		return
	}
	if err := a.m.Join(n, j.Transfer); err != nil {
		a.log.Warn("join refused", "node", j.Node, "image", j.Transfer, "err", err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *MulticastAPI) handleProgress(w http.ResponseWriter, r *http.Request) {
	var p MulticastProgress
	if !decode(w, r, &p) {
		return
	}
	if _, ok := a.auth.auth(w, r, p.Node); !ok {
		return
	}
	err := a.m.Report(p)
	if errors.Is(err, ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
