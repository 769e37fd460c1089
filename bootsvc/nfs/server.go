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

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// Artifacts finds artifact sets; *images.Store satisfies it.
type Artifacts interface {
	Current(name string) (*images.Entry, error)
}

// Nodes gives the inventory; a store.Store satisfies it.
type Nodes interface {
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
}

// Deps are the server's collaborators.
type Deps struct {
	StateDir  string
	Nodes     Nodes
	Artifacts Artifacts
	Log       *slog.Logger
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
	if deps.StateDir == "" || deps.Nodes == nil || deps.Artifacts == nil {
		return nil, errors.New("nfs: StateDir, Nodes and Artifacts are required")
	}
	return &Server{cfg: cfg.withDefaults(), deps: deps, log: logging.OrDiscard(deps.Log).With("server", "nfs"),
		mounts: map[string]string{}, ready: make(chan struct{})}, nil
}

// Export returns where nodes mount the root of image name at digest. It
// satisfies httpboot.NFSRoots.
func (s *Server) Export(name, digest string) (host, path string, err error) {
	if !s.cfg.Enabled {
		return "", "", errors.New("nfs server is not enabled (serve config nfs.enabled)")
	}
	return s.cfg.Address, s.pseudo(name, digest), nil
}

func (s *Server) pseudo(name, digest string) string {
	return s.cfg.Pseudo + "/" + name + "/" + images.DigestHex(digest)
}

func (s *Server) mountPoint(name, digest string) string {
	return filepath.Join(s.deps.StateDir, "mnt", name, images.DigestHex(digest))
}

// wanted lists the current sets of every image an NFS-mode node boots.
func (s *Server) wanted(ctx context.Context) ([]*images.Entry, error) {
	inv, err := s.deps.Nodes.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("nfs: %w", err)
	}
	seen := map[string]bool{}
	var out []*images.Entry
	var errs []error
	for _, n := range inv.Nodes() {
		if n.Mode != inventory.ModeNFS || n.Image == "" || seen[n.Image] {
			continue
		}
		seen[n.Image] = true
		e, err := s.deps.Artifacts.Current(n.Image)
		if err != nil {
			errs = append(errs, fmt.Errorf("nfs: image %s of node %s: %w", n.Image, n.Name, err))
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Manifest.Name < out[j].Manifest.Name })
	return out, errors.Join(errs...)
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
