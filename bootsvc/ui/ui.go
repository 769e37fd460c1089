// Package ui is the boot service's dashboard: a read-only web page under /ui
// (nodes table, boot-storm view, artifact sets) with live updates by
// server-sent events fed by the store's change notifications. The page and
// its scripts are embedded (static/), so it works offline with no build step.
//
// The HTTP boot server mounts Handler at /ui and /ui/; everything but the
// static assets needs the admin token or the viewer token, as a bearer header
// or the cookie the login form sets.
package ui

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

//go:embed static
var static embed.FS

// Store is what the dashboard reads of the boot-service store (a
// store.Store satisfies it).
type Store interface {
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
	States(ctx context.Context) ([]nodestate.Node, error)
	State(ctx context.Context, node string) (nodestate.Node, error)
	Watch(ctx context.Context) <-chan store.Change
}

// Artifacts lists artifact sets; *images.Store satisfies it.
type Artifacts interface {
	List(ctx context.Context) ([]images.Entry, error)
	Current(name string) (*images.Entry, error)
}

// Config says who may look. At least one token must be set; both are
// compared in constant time.
type Config struct {
	AdminToken  string // http.admin_token
	ViewerToken string // http.viewer_token: the dashboard only, not the admin API
}

// Deps are the dashboard's collaborators; Log may be nil.
type Deps struct {
	Store     Store
	Artifacts Artifacts
	Log       *slog.Logger
}

// Server serves the dashboard.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	batch   time.Duration // how long the event stream gathers changes into one message
	handler http.Handler
}

// New returns the dashboard, or an error when no token would let anyone in.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.AdminToken == "" && cfg.ViewerToken == "" {
		return nil, errors.New("ui: needs http.admin_token or http.viewer_token")
	}
	if deps.Store == nil || deps.Artifacts == nil {
		return nil, errors.New("ui: Store and Artifacts are required")
	}
	s := &Server{cfg: cfg, deps: deps, log: logging.OrDiscard(deps.Log).With("server", "ui"), now: time.Now, batch: 100 * time.Millisecond}
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP serves /ui and everything under it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() http.Handler {
	assets, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /ui", s.page)
	mux.HandleFunc("GET /ui/{$}", s.page)
	mux.HandleFunc("POST /ui/login", s.login)
	mux.HandleFunc("POST /ui/logout", s.logout)
	mux.HandleFunc("GET /ui/events", s.viewer(s.events))
	mux.HandleFunc("GET /ui/api/nodes", s.viewer(s.nodes))
	mux.HandleFunc("GET /ui/api/storm", s.viewer(s.storm))
	mux.HandleFunc("GET /ui/api/images", s.viewer(s.images))
	return secureHeaders(mux)
}

// secureHeaders keeps the page to its own origin: no inline script, no
// framing, no content sniffing.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// page serves the dashboard, or the login form (401) to a visitor without a token.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorized(r); !ok {
		s.loginForm(w, http.StatusUnauthorized, "")
		return
	}
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "page missing from the build", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
