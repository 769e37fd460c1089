package httpboot

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// CloudInitStore is what the cloud-init routes need of the store; a
// store.Store satisfies it.
type CloudInitStore interface {
	cloudinit.Source
	PutCloudInit(ctx context.Context, k cloudinit.Key, d cloudinit.Data) error
	DeleteCloudInit(ctx context.Context, k cloudinit.Key) error
	CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error)
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
}

// cloudInitRoutes adds the NoCloud routes and their admin API.
func (s *Server) cloudInitRoutes(mux *http.ServeMux) {
	if s.deps.CloudInit == nil {
		return
	}
	// The seed URL on the node's kernel command line is
	// /cloud-init/<token>/; cloud-init appends the file names. The token in
	// the path is the node's secure path: its secure parts are served there
	// and only there, to the node the token was made for, at its address.
	mux.HandleFunc("GET /cloud-init/{token}/{file}", s.handleCloudInit)
	mux.HandleFunc("GET /cloud-init/", s.handleCloudInitNoToken)
	s.cloudInitAdminRoutes(mux)
}

// handleCloudInit serves one NoCloud file to the node the token belongs to.
func (s *Server) handleCloudInit(w http.ResponseWriter, r *http.Request) {
	file, ip := r.PathValue("file"), s.clientIP(r)
	// Never log the token nor any content: both are the node's secrets.
	refuse := func(code int, why string, args ...any) {
		s.log.Warn("cloud-init: refused", append([]any{"ip", ip.String(), "peer", sourceIP(r), "file", file, "why", why}, args...)...)
		http.Error(w, why, code)
	}
	if !cloudinit.IsFile(file) {
		refuse(http.StatusNotFound, "no such cloud-init file")
		return
	}
	n, err := s.deps.Store.NodeByIP(r.Context(), ip)
	if errors.Is(err, store.ErrNotFound) {
		refuse(http.StatusForbidden, "no node at this address")
		return
	}
	if err != nil {
		refuse(http.StatusServiceUnavailable, "store unavailable", "err", err)
		return
	}
	if _, err := s.tokens.Check(r.PathValue("token"), n.Name, n.MACs, ip.String()); err != nil {
		refuse(http.StatusForbidden, "token not valid for this node", "node", n.Name)
		return
	}
	files, err := s.renderCloudInit(r.Context(), cloudinit.Target{Node: &n, Secure: true})
	if err != nil {
		s.log.Error("cloud-init: render failed", "node", n.Name, "file", file, "err", err)
		http.Error(w, "cloud-init render failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body, ok := files[file]
	if !ok {
		http.Error(w, file+" not set for this node", http.StatusNotFound)
		return
	}
	s.record(r, n.Name, nodestate.Report{State: nodestate.CloudInit, Detail: file + " from " + ip.String()})
	s.log.Info("cloud-init", "node", n.Name, "ip", ip.String(), "file", file, "bytes", len(body))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // secure parts: no shared caches
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// handleCloudInitNoToken refuses cloud-init requests without a token.
func (s *Server) handleCloudInitNoToken(w http.ResponseWriter, r *http.Request) {
	s.log.Warn("cloud-init: refused", "ip", s.clientIP(r).String(), "peer", sourceIP(r), "why", "missing token")
	http.Error(w, "missing token: the seed URL is /cloud-init/<token>/", http.StatusForbidden)
}

// renderCloudInit renders t's files; a node's instance-id follows the
// digest of its image's current set.
func (s *Server) renderCloudInit(ctx context.Context, t cloudinit.Target) (cloudinit.Files, error) {
	t.ClusterName = s.cfg.CloudInit.clusterName()
	if t.Node != nil {
		t.Image = t.Node.Image
		if e, err := s.deps.Artifacts.Current(t.Node.Image); err == nil && e.Manifest != nil {
			t.Image = e.Manifest.ImageDigest
		}
	}
	return cloudinit.ForTarget(ctx, s.deps.CloudInit, t)
}

// clientIP is the address of the node asking: the peer, or, when the peer
// is a trusted proxy, the last X-Forwarded-For address no trusted proxy
// added.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddr(sourceIP(r))
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !s.trustedProxy(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{} // a forged or broken hop: nobody
		}
		if a = a.Unmap(); !s.trustedProxy(a) {
			return a
		}
	}
	return peer
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
