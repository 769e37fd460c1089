package nfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// Specs says what every node boots; *bootspec.Resolver satisfies it. The
// server exports the root of each Spec whose root is an NFS export.
type Specs interface {
	Specs(ctx context.Context) ([]bootspec.Spec, error)
}

// Deps are the server's collaborators.
type Deps struct {
	StateDir string
	Boot     Specs
	Log      *slog.Logger
	// Wrap, when set, adjusts the ganesha command before it starts (tests run
	// it inside a network namespace with `ip netns exec`).
	Wrap func(cmd *exec.Cmd) *exec.Cmd
	// Dial probes ganesha's port once started; nil dials from this process.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server exports NFS-mode nodes' image roots.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu      sync.Mutex
	mounts  map[string]string // mount point → image "name@digest", only those we mounted
	exports []export
	ready   chan struct{}
}

// New checks cfg and returns a server; nothing is mounted or started yet.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.StateDir == "" || deps.Boot == nil {
		return nil, errors.New("nfs: StateDir and Boot are required")
	}
	return &Server{cfg: cfg.withDefaults(), deps: deps, log: logging.OrDiscard(deps.Log).With("server", "nfs"),
		mounts: map[string]string{}, ready: make(chan struct{})}, nil
}

// Exports names where nodes mount image roots: what the resolver puts on
// their command lines and what the server then exports. It needs no running
// server, so the resolver can be made before the server it feeds.
type Exports struct{ cfg Config }

// NewExports returns the export names of cfg.
func NewExports(cfg Config) Exports { return Exports{cfg: cfg.withDefaults()} }

// Export returns where nodes mount the root of image name at digest; it
// satisfies bootspec.NFSRoots.
func (x Exports) Export(name, digest string) (host, path string, err error) {
	if !x.cfg.Enabled {
		return "", "", errors.New("nfs server is not enabled (serve config nfs.enabled)")
	}
	return x.cfg.Address, x.pseudo(name, digest), nil
}

func (x Exports) pseudo(name, digest string) string {
	return x.cfg.Pseudo + "/" + name + "/" + images.DigestHex(digest)
}

// Export is Exports.Export for this server's configuration.
func (s *Server) Export(name, digest string) (host, path string, err error) {
	return Exports{cfg: s.cfg}.Export(name, digest)
}

func (s *Server) pseudo(name, digest string) string { return Exports{cfg: s.cfg}.pseudo(name, digest) }

func (s *Server) mountPoint(name, digest string) string {
	return filepath.Join(s.deps.StateDir, "mnt", name, images.DigestHex(digest))
}

// wanted lists the artifact sets whose roots the resolver's Specs name as
// NFS exports. A node that cannot be resolved keeps only itself from booting.
func (s *Server) wanted(ctx context.Context) ([]*images.Entry, error) {
	specs, err := s.deps.Boot.Specs(ctx)
	seen := map[string]bool{}
	var out []*images.Entry
	for _, sp := range specs {
		if sp.Root.Kind != bootspec.RootNFS || sp.Image == nil {
			continue
		}
		key := sp.Image.Manifest.Name + "@" + sp.Image.Manifest.ImageDigest
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, sp.Image)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Manifest.Name < out[j].Manifest.Name })
	if err != nil {
		err = fmt.Errorf("nfs: %w", err)
	}
	return out, err
}

// Ready is closed once ganesha has been started (or there was nothing to export).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Exports returns the current exports' pseudo paths (for status output and tests).
func (s *Server) Exports() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.exports {
		out = append(out, e.Pseudo)
	}
	return out
}
