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
	"net/netip"
	"text/template"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Store is what the server needs of the boot-service store (a store.Store
// satisfies it): nodes by name and address, boot states, host keys.
type Store interface {
	Node(ctx context.Context, name string) (inventory.Node, error)
	NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error)
	Report(ctx context.Context, node string, r nodestate.Report) error
	States(ctx context.Context) ([]nodestate.Node, error)
	HostKey(ctx context.Context, node string) (hostkeys.Key, error)
}

// Resolver decides what a node boots; *bootspec.Resolver satisfies it.
type Resolver interface {
	Resolve(ctx context.Context, c bootspec.Client) (bootspec.Spec, error)
}

// Artifacts finds artifact sets; *images.Store satisfies it.
type Artifacts interface {
	Current(name string) (*images.Entry, error)
	Get(name, digest string) (*images.Entry, error)
}

// Deps are the server's collaborators; all but Reload, Log, Registry and UI
// are required.
type Deps struct {
	StateDir  string
	Store     Store
	Boot      Resolver
	Tokens    *nodetoken.Tokens // the same tokens the resolver mints
	Artifacts Artifacts
	Reload    func(ctx context.Context) error // admin "reload"; nil: not offered
	Log       *slog.Logger
	Registry  prometheus.Registerer // nil: a private registry
	CloudInit CloudInitStore        // nil: no /cloud-init/ routes
	UI        http.Handler          // served at /ui and under it (bootsvc/ui); nil: no dashboard
	// Mounts are more handlers on this server, by mux pattern (the tree
	// coordinator's API); their figures go in Collectors.
	Mounts     map[string]http.Handler
	Collectors []prometheus.Collector
}

// Server is the HTTP boot service.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	tokens   *nodetoken.Tokens
	script   *template.Template
	verified *verifier
	overlays *overlayCache
	metrics  *metrics
	gather   prometheus.Gatherer
	handler  http.Handler
	proxies  []netip.Prefix // trusted reverse proxies (cloud-init)
}

// New checks cfg and prepares the server (secret, template, caches).
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.StateDir == "" || deps.Store == nil || deps.Boot == nil || deps.Tokens == nil || deps.Artifacts == nil {
		return nil, errors.New("httpboot: StateDir, Store, Boot, Tokens and Artifacts are required")
	}
	cfg = cfg.WithDefaults(deps.StateDir)
	log := logging.OrDiscard(deps.Log).With("server", "http")
	tmpl, err := loadTemplate(cfg.ScriptTemplate)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: log, tokens: deps.Tokens, script: tmpl, proxies: cfg.CloudInit.proxies()}
	s.verified = newVerifier(log)
	s.overlays = newOverlayCache(cfg.OverlayCache, log)
	reg := deps.Registry
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gather = g
	}
	if s.metrics, err = newMetrics(reg, deps.Store); err != nil {
		return nil, err
	}
	for _, c := range deps.Collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	return s, nil
}

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
	s.cloudInitRoutes(mux)
	if s.deps.UI != nil {
		mux.Handle("/ui", s.deps.UI)
		mux.Handle("/ui/", s.deps.UI)
	}
	for pattern, h := range s.deps.Mounts {
		mux.Handle(pattern, h)
	}
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
