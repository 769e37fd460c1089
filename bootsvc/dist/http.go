package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/logging"
)

// Prefix is where the coordinator's API lives on the boot service's HTTP
// server.
const Prefix = "/api/v1/dist/"

// Nodes looks nodes up (a store.Store satisfies it): their token binding and
// topology labels.
type Nodes interface {
	Node(ctx context.Context, name string) (inventory.Node, error)
}

// API is the coordinator's HTTP API (docs/PROTOCOL.md).
type API struct {
	c      *Coordinator
	nodes  Nodes
	tokens *nodetoken.Tokens // nil: tokens are not checked (tests)
	log    *slog.Logger
	arts   Artifacts // nil: no piece tables (ServePieceTables)
	tables *tables
}

// NewAPI serves c; tokens nil skips the token check.
func NewAPI(c *Coordinator, nodes Nodes, tokens *nodetoken.Tokens, log *slog.Logger) *API {
	return &API{c: c, nodes: nodes, tokens: tokens, log: logging.OrDiscard(log).With("server", "dist")}
}

// Handler serves the routes under Prefix.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Prefix+"join", a.handleJoin)
	mux.HandleFunc("POST "+Prefix+"resume", a.handleResume)
	mux.HandleFunc("POST "+Prefix+"progress", a.handleProgress)
	mux.HandleFunc("POST "+Prefix+"leave", a.handleLeave)
	mux.HandleFunc("GET "+Prefix+"status", a.handleStatus)
	mux.HandleFunc("GET "+Prefix+"pieces", a.handlePieces)
	return mux
}

// joinBody is a JoinRequest plus the port the node serves pieces on.
type joinBody struct {
	JoinRequest
	PeerPort int `json:"peer_port"`
}

func (a *API) handleJoin(w http.ResponseWriter, r *http.Request) {
	var body joinBody
	if !decode(w, r, &body) {
		return
	}
	req, ok := a.joinRequest(w, r, body)
	if !ok {
		return
	}
	a.markGone(r.Context(), req)
	src, err := a.c.Join(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.log.Debug("join", "node", req.Node, "image", req.Transfer, "held", req.Held, "source", src.Peer)
	reply(w, src)
}

// joinRequest checks the node's token and completes its request from the
// inventory (topology) and the request (peer URL).
func (a *API) joinRequest(w http.ResponseWriter, r *http.Request, body joinBody) (JoinRequest, bool) {
	n, ok := a.auth(w, r, body.Node)
	if !ok {
		return JoinRequest{}, false
	}
	req := body.JoinRequest
	req.Topology = Topology{Rack: n.Rack, Switch: n.Switch}
	if body.PeerPort > 0 && body.PeerPort < 65536 {
		// The address is the request's own, never one the node claims.
		req.PeerURL = "http://" + net.JoinHostPort(sourceIP(r), strconv.Itoa(body.PeerPort)) + "/root"
	}
	return req, true
}

func (a *API) handleProgress(w http.ResponseWriter, r *http.Request) {
	var p Progress
	if !decode(w, r, &p) {
		return
	}
	if _, ok := a.auth(w, r, p.Node); !ok {
		return
	}
	rep, err := a.c.Report(p)
	if errors.Is(err, ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reply(w, rep)
}

func (a *API) handleLeave(w http.ResponseWriter, r *http.Request) {
	var p Progress
	if !decode(w, r, &p) {
		return
	}
	if _, ok := a.auth(w, r, p.Node); !ok {
		return
	}
	if err := a.c.Leave(p.Transfer, p.Node); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) handleStatus(w http.ResponseWriter, _ *http.Request) {
	reply(w, a.c.Status())
}

// auth checks the node's token against its inventory entry and the
// request's address, as the phone-home does.
func (a *API) auth(w http.ResponseWriter, r *http.Request, name string) (inventory.Node, bool) {
	n, err := a.nodes.Node(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, fmt.Sprintf("node %q: not in the inventory", name), http.StatusNotFound)
		return n, false
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return n, false
	}
	if a.tokens == nil {
		return n, true
	}
	ip := n.IP
	if ip == "" {
		ip = sourceIP(r)
	}
	if _, err := a.tokens.Check(r.URL.Query().Get("token"), n.Name, n.MACs, ip); err != nil {
		a.log.Warn("refused", "node", name, "ip", sourceIP(r), "err", err)
		http.Error(w, "forbidden", http.StatusForbidden)
		return n, false
	}
	return n, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
