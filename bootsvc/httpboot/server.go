// Package httpboot is the boot service's HTTP side: per-node iPXE scripts,
// artifact downloads (verified before first served, Range and ETag), per-node
// overlay archives guarded by a node token, the phone-home endpoint, Prometheus
// metrics and a small admin API. The wire protocol is docs/PROTOCOL.md.
package httpboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"text/template"
	"time"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Nodes looks nodes up in the inventory, groups already merged.
// An inventory snapshot satisfies it (wrapped by the caller if names differ).
type Nodes interface {
	Node(name string) (*inventory.Node, bool)
	NodeByMAC(mac string) (*inventory.Node, bool)
	NodeByIP(ip string) (*inventory.Node, bool)
}

// Artifacts finds artifact sets; *images.Store satisfies it.
type Artifacts interface {
	Current(name string) (*images.Entry, error)
	Get(name, digest string) (*images.Entry, error)
}

// States records boot states; *nodestate.Store satisfies it.
type States interface {
	Report(ctx context.Context, node string, r nodestate.Report) error
	List() []nodestate.Node
	Counts() map[string]int
}

// NFSRoots tells the script where a node's NFS root is exported.
type NFSRoots interface {
	// Export returns host and path of the export for an image set.
	Export(name, digest string) (host, path string, err error)
}

// Deps are the server's collaborators.
type Deps struct {
	StateDir  string
	Nodes     func() Nodes // current inventory (called per request, so reloads apply)
	Artifacts Artifacts
	States    States
	NFS       NFSRoots                        // nil: NFS-mode nodes are refused
	Reload    func(ctx context.Context) error // admin "reload"; nil: not offered
	Log       *slog.Logger
	Registry  prometheus.Registerer // nil: a private registry
}

// Server is the HTTP boot service.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	tokens   *Tokens
	script   *template.Template
	verified *verifier
	overlays *overlayCache
	hostKeys *hostkeys.Store
	metrics  *metrics
	gather   prometheus.Gatherer
	handler  http.Handler
}

// New checks cfg and prepares the server (secret, template, caches).
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.StateDir == "" || deps.Nodes == nil || deps.Artifacts == nil || deps.States == nil {
		return nil, errors.New("httpboot: StateDir, Nodes, Artifacts and States are required")
	}
	cfg = cfg.withDefaults(deps.StateDir)
	log := logging.OrDiscard(deps.Log).With("server", "http")
	tok, err := LoadSecret(cfg.TokenSecret)
	if err != nil {
		return nil, err
	}
	tmpl, err := loadTemplate(cfg.ScriptTemplate)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: log, tokens: tok, script: tmpl}
	s.verified = newVerifier(log)
	s.overlays = newOverlayCache(cfg.OverlayCache, log)
	s.hostKeys = hostkeys.NewStore(filepath.Join(deps.StateDir, "hostkeys"))
	reg := deps.Registry
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gather = g
	}
	if s.metrics, err = newMetrics(reg, deps.States); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Tokens returns the server's token minter (the NFS side and tests use it).
func (s *Server) Tokens() *Tokens { return s.tokens }

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ipxe", s.handleIPXE)
	mux.HandleFunc("GET /artifacts/{name}/{digest}/{file}", s.handleArtifact)
	mux.HandleFunc("GET /nodes/{name}/overlay.cpio.zst", s.handleOverlay)
	mux.HandleFunc("POST /api/v1/nodes/{name}/state", s.handleState)
	if s.gather != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /api/v1/admin/nodes", s.admin(s.handleAdminNodes))
	mux.HandleFunc("POST /api/v1/admin/reload", s.admin(s.handleAdminReload))
	return s.metrics.wrap(mux)
}

// Run serves until ctx ends, then shuts down gracefully (bounded).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http boot: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "public", s.cfg.PublicURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http boot: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// sourceIP is the request's peer address without the port.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
