package registry_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testRegistry is Debian's docker-registry (distribution 2.8) on loopback,
// behind a reverse proxy that counts blob uploads and can kill the registry
// after the n-th completed blob.
type testRegistry struct {
	t       *testing.T
	dir     string // storage root directory
	addr    string // the registry itself
	Host    string // the proxy, what clients use
	logPath string

	mu  sync.Mutex
	cmd *exec.Cmd

	uploads   atomic.Int64 // upload sessions started (POST .../blobs/uploads/)
	completed atomic.Int64 // blobs completed (PUT ...?digest=)
	killAfter atomic.Int64 // >0: kill the registry when completed reaches it
	fail      atomic.Int64 // >0: answer that many requests with 503
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tmp := t.TempDir()
	r := &testRegistry{t: t, dir: filepath.Join(tmp, "data"), logPath: filepath.Join(tmp, "registry.log")}
	var rp *httputil.ReverseProxy // set below, before the registry starts
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.fail.Load() > 0 && r.fail.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		isUpload := strings.Contains(req.URL.Path, "/blobs/uploads/")
		if isUpload && req.Method == http.MethodPost && req.URL.Query().Get("mount") == "" {
			r.uploads.Add(1)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, req)
		if isUpload && req.Method == http.MethodPut && req.URL.Query().Get("digest") != "" && sw.status == http.StatusCreated {
			n := r.completed.Add(1)
			if k := r.killAfter.Load(); k > 0 && n >= k {
				r.Kill()
			}
		}
	}))
	t.Cleanup(proxy.Close)
	// Pick the registry's port only now that the proxy holds its own: picked
	// earlier, the proxy could be given the same free port and proxy to itself.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r.addr = addr
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, r.dir, addr)
	if err := os.WriteFile(filepath.Join(tmp, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse("http://" + addr)
	rp = httputil.NewSingleHostReverseProxy(target)
	// A killed registry is expected; answer 502 without logging.
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	r.Host = strings.TrimPrefix(proxy.URL, "http://")
	r.Start()
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("registry log:\n%s", tail(string(b), 4000))
		}
	})
	return r
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// Start runs the registry and waits until it answers /v2/.
func (r *testRegistry) Start() {
	r.t.Helper()
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("docker-registry", "serve", filepath.Join(filepath.Dir(r.dir), "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies (timeout panic), the registry goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Kill()
	r.t.Fatalf("registry did not start on %s", r.addr)
}

// Kill stops the registry process this test started (by PID) and reaps it.
func (r *testRegistry) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// Tags lists the tags of repo straight from the registry (not counted).
func (r *testRegistry) Tags(ctx context.Context, repo string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/v2/"+repo+"/tags/list", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// BlobPath is where the registry keeps the bytes of a blob.
func (r *testRegistry) BlobPath(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(r.dir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
