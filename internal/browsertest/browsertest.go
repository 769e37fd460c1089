// Package browsertest starts a real headless Chromium (Debian's chromium)
// for tests and drives it with chromedp. New skips the test when no
// chromium is installed; Screenshot keeps what the page looked like as a
// test artifact.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"

	"github.com/chromedp/chromedp"
)

// candidates are the names Chromium goes by, Debian's first.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}

// Path returns the Chromium binary, or "" when there is none
// ($IMGCTL_CHROMIUM overrides the search).
func Path() string {
	if p := os.Getenv("IMGCTL_CHROMIUM"); p != "" {
		return p
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a private profile and returns a
// chromedp context for one tab. The browser is stopped, and its profile
// removed, on t.Cleanup. It skips the test when Chromium is missing.
func New(t testing.TB) context.Context {
	t.Helper()
	bin := Path()
	if bin == "" {
		t.Skip("chromium not installed (apt-get install chromium; make deps does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
		chromedp.Headless,
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Start the browser now, so a broken install fails here and not in
	// the middle of the test's first action.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel() // closes the tab and the browser, and waits for it
		cancelAlloc()
	})
	return ctx
}

// ArtifactDir is where tests leave files for people to look at:
// $IMGCTL_TEST_ARTIFACTS, or test/artifacts in the source tree.
func ArtifactDir() string {
	if d := os.Getenv("IMGCTL_TEST_ARTIFACTS"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "test", "artifacts")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot writes a full-page PNG of the tab in ctx to
// ArtifactDir()/<test name>-<name>.png and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := ArtifactDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
