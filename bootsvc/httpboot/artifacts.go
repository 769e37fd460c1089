package httpboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

// nameRE and digestRE bound what path segments may name, so no request can
// reach outside the artifact store.
var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// handleArtifact serves one file of a verified artifact set.
func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) {
	name, digest, file := r.PathValue("name"), r.PathValue("digest"), r.PathValue("file")
	peer := sourceIP(r)
	if !nameRE.MatchString(name) || !digestRE.MatchString(digest) || !nameRE.MatchString(file) {
		s.log.Warn("artifacts: refused malformed path", "path", r.URL.Path, "peer", peer)
		http.Error(w, "bad artifact path", http.StatusBadRequest)
		return
	}
	e, err := s.deps.Artifacts.Get(name, "sha256:"+digest)
	if err != nil {
		s.log.Warn("artifacts: not found", "image", name, "digest", digest, "peer", peer, "err", err)
		http.Error(w, "no such artifact set", http.StatusNotFound)
		return
	}
	if err := s.verified.check(r.Context(), e); err != nil {
		s.log.Error("artifacts: refusing corrupt set", "image", name, "digest", digest, "peer", peer, "err", err)
		if n, ok := s.peerNode(r, peer); ok {
			s.record(r, n.Name, nodestate.Report{State: nodestate.Failed, Reason: "image " + name + " failed verification on the server: " + err.Error()})
		}
		http.Error(w, "artifact set failed verification", http.StatusServiceUnavailable)
		return
	}
	if file == images.ManifestFile {
		w.Header().Set("Cache-Control", "no-cache")
		cw, done := s.metrics.countKind(w, "manifest")
		http.ServeFile(cw, r, filepath.Join(e.Dir, images.ManifestFile))
		done()
		return
	}
	kind := ""
	for k, a := range e.Manifest.Artifacts {
		if a.File == file {
			kind = k
		}
	}
	if kind == "" {
		s.log.Warn("artifacts: no such file in set", "image", name, "file", file, "peer", peer)
		http.Error(w, "no such artifact", http.StatusNotFound)
		return
	}
	f, a, err := e.Open(kind)
	if err != nil {
		s.log.Error("artifacts: open", "image", name, "file", file, "err", err)
		http.Error(w, "artifact unavailable", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	w.Header().Set("ETag", `"`+a.SHA256+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Imgctl-SHA256", a.SHA256)
	if kind == images.Kernel && !strings.HasPrefix(r.Header.Get("Range"), "bytes=") {
		if n, ok := s.peerNode(r, peer); ok {
			s.record(r, n.Name, nodestate.Report{State: nodestate.Kernel, Detail: "kernel fetched by " + peer, ImageDigest: e.Manifest.ImageDigest})
		}
	}
	cw, done := s.metrics.countKind(w, kind)
	http.ServeContent(cw, r, "", e.Manifest.Created, f)
	done()
}

// verifier remembers which artifact sets passed Entry.Verify, keyed by the
// set's directory and its files' identity (inode, size, mtime), so a set is
// hashed once before first served and again whenever a file changes.
type verifier struct {
	log *slog.Logger
	mu  sync.Mutex
	ok  map[string]*verifyEntry
}

type verifyEntry struct {
	mu  sync.Mutex // one verification at a time per set
	sig string
	err error
}

func newVerifier(log *slog.Logger) *verifier {
	return &verifier{log: log, ok: map[string]*verifyEntry{}}
}

// signature identifies the current content of a set's files cheaply.
func signature(e *images.Entry) (string, error) {
	files := []string{images.ManifestFile}
	for _, a := range e.Manifest.Artifacts {
		files = append(files, a.File)
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		st, err := os.Stat(filepath.Join(e.Dir, f))
		if err != nil {
			return "", err
		}
		ino := uint64(0)
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
		}
		fmt.Fprintf(&b, "%s:%d:%d:%d;", f, ino, st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

// check returns nil when e is verified, verifying it first if it is new or changed.
func (v *verifier) check(ctx context.Context, e *images.Entry) error {
	sig, err := signature(e)
	if err != nil {
		return err
	}
	v.mu.Lock()
	ve := v.ok[e.Dir]
	if ve == nil {
		ve = &verifyEntry{}
		v.ok[e.Dir] = ve
	}
	v.mu.Unlock()
	ve.mu.Lock()
	defer ve.mu.Unlock()
	if ve.sig == sig {
		return ve.err
	}
	start := time.Now()
	// Verification outlives one request: a client hanging up must not leave the
	// set marked corrupt, so it runs on its own bounded context.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	err = e.Verify(vctx)
	ve.sig, ve.err = sig, err
	if err != nil {
		v.log.Error("artifact set failed verification", "dir", e.Dir, "err", err)
	} else {
		v.log.Info("artifact set verified", "image", e.Manifest.Name, "digest", e.Manifest.ImageDigest, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// peerNode is the inventory node with the request's source address, if any.
func (s *Server) peerNode(r *http.Request, peer string) (inventory.Node, bool) {
	ip, err := netip.ParseAddr(peer)
	if err != nil {
		return inventory.Node{}, false
	}
	n, err := s.deps.Store.NodeByIP(r.Context(), ip.Unmap())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("look up node by address", "peer", peer, "err", err)
	}
	return n, err == nil
}
