package httpboot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/overlay"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// handleOverlay serves the node's rendered overlay archive, only to that node.
func (s *Server) handleOverlay(w http.ResponseWriter, r *http.Request) {
	n, mac, ok := s.authorize(w, r, "overlay")
	if !ok {
		return
	}
	e, err := s.deps.Artifacts.Current(n.Image)
	if err != nil {
		s.log.Error("overlay: no image", "node", n.Name, "image", n.Image, "err", err)
		http.Error(w, "node has no bootable image", http.StatusServiceUnavailable)
		return
	}
	ip := n.IP
	if ip == "" {
		ip = sourceIP(r)
	}
	data := overlay.Data{
		Node: n.Name, Hostname: n.Name, IP: ip, MAC: mac,
		Image: e.Manifest.Name, ImageDigest: e.Manifest.ImageDigest, Vars: n.Vars, SSHAuthorizedKeys: n.SSHKeys,
	}
	key, err := s.deps.Store.HostKey(r.Context(), n.Name)
	if err != nil {
		s.log.Error("overlay: host key", "node", n.Name, "err", err)
		http.Error(w, "node host key unavailable", http.StatusInternalServerError)
		return
	}
	data.SSHHostKeys = []overlay.HostKey{{Type: key.Type, Private: key.Private, Public: key.Public}}
	dirs := append([]string{filepath.Join(e.Dir, overlayDir)}, n.Overlays...)
	path, err := s.overlays.get(r, dirs, data)
	if err != nil {
		s.log.Error("overlay: render failed", "node", n.Name, "err", err)
		http.Error(w, "overlay render failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "overlay unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, _ := f.Stat()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store") // secrets: no shared caches
	w.Header().Set("ETag", `"`+filepath.Base(path)+`"`)
	cw, done := s.metrics.countKind(w, "overlay")
	http.ServeContent(cw, r, "", st.ModTime(), f)
	done()
}

// overlayCache keeps rendered archives on disk, one per (node, image digest,
// hash of everything else the render reads).
type overlayCache struct {
	dir string
	log *slog.Logger
	mu  sync.Mutex
	key map[string]*sync.Mutex // one render at a time per file
}

func newOverlayCache(dir string, log *slog.Logger) *overlayCache {
	return &overlayCache{dir: dir, log: log, key: map[string]*sync.Mutex{}}
}

// get returns the cached archive for data, rendering it first when missing.
func (c *overlayCache) get(r *http.Request, dirs []string, data overlay.Data) (string, error) {
	h := sha256.New()
	json.NewEncoder(h).Encode(struct {
		Dirs []string
		Data overlay.Data
	}{dirs, data})
	sum := hex.EncodeToString(h.Sum(nil))[:24]
	path := filepath.Join(c.dir, data.Node, images.DigestHex(data.ImageDigest)+"-"+sum+".cpio.zst")
	c.mu.Lock()
	m := c.key[path]
	if m == nil {
		m = &sync.Mutex{}
		c.key[path] = m
	}
	c.mu.Unlock()
	m.Lock()
	defer m.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		return overlay.Render(r.Context(), dirs, data, w, "zstd")
	})
	if err != nil {
		return "", err
	}
	c.log.Info("overlay rendered", "node", data.Node, "file", path)
	// Older renders of this node (previous image or vars) are never asked for again.
	if old, err := filepath.Glob(filepath.Join(c.dir, data.Node, "*.cpio.zst")); err == nil {
		for _, o := range old {
			if o != path {
				os.Remove(o)
			}
		}
	}
	return path, nil
}

// clear drops every cached archive (after an inventory reload).
func (c *overlayCache) clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.key = map[string]*sync.Mutex{}
	return os.RemoveAll(c.dir)
}

// authorize checks the node token and source address of a request for a
// node's own resource, writing the refusal (and a log line) itself.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, what string) (inventory.Node, string, bool) {
	name, peer := r.PathValue("name"), sourceIP(r)
	refuse := func(code int, msg string, args ...any) (inventory.Node, string, bool) {
		s.log.Warn(what+": refused", append([]any{"node", name, "peer", peer, "why", msg}, args...)...)
		http.Error(w, msg, code)
		return inventory.Node{}, "", false
	}
	if !nameRE.MatchString(name) {
		return refuse(http.StatusBadRequest, "bad node name")
	}
	n, err := s.deps.Store.Node(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(http.StatusNotFound, "unknown node")
	}
	if err != nil {
		return refuse(http.StatusServiceUnavailable, "store unavailable", "err", err)
	}
	if n.IP != "" && n.IP != peer {
		s.metrics.refused.WithLabelValues(n.Name).Inc()
		return refuse(http.StatusForbidden, "request not from the node's address", "want", n.IP)
	}
	mac, err := s.tokens.Check(r.URL.Query().Get("token"), n.Name, n.MACs, peer)
	if err != nil {
		s.metrics.refused.WithLabelValues(n.Name).Inc()
		return refuse(http.StatusForbidden, "bad token", "err", err)
	}
	return n, mac, true
}
