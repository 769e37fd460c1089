// Package buildtest builds recipes for other packages' tests into the shared
// test storage (internal/testenv), so that one cached build of a fixture serves
// every test package that needs a real image.
package buildtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/buildah"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/reexec"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/cstore"
	"github.com/imgctl/imgctl/internal/testenv"
)

// RepoRoot is the imgctl source tree this package was compiled from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Store opens the shared test storage; it is shut down when t ends.
func Store(t testing.TB) storage.Store {
	t.Helper()
	testenv.RequireRoot(t)
	st, err := cstore.Open(context.Background(), testenv.Storage(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Shutdown(false) })
	return st
}

// Agent builds cmd/imgctl-agent once per test binary into the shared test
// directory and returns its path.
func Agent(t testing.TB) string {
	t.Helper()
	out := filepath.Join(testenv.Dir, "bin", "imgctl-agent")
	testenv.Lock(t, "agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/imgctl-agent")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build imgctl-agent: %v\n%s", err, b)
	}
	return out
}

// Image builds the recipe (a path relative to the repository root) and its
// parents, reusing cached layers, and returns the image as an images.Source.
func Image(t testing.TB, recipePath string) images.Source {
	t.Helper()
	st := Store(t)
	testenv.Lock(t, "build")
	r, err := recipe.Load(filepath.Join(RepoRoot(), recipePath), recipe.Vars{Lookup: os.LookupEnv})
	if err != nil {
		t.Fatal(err)
	}
	agent := Agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	b := builder.New(st, builder.Options{Progress: testWriter{t}, Agent: func() (string, error) { return agent, nil }})
	start := time.Now()
	res, err := b.Build(ctx, r)
	if err != nil {
		t.Fatalf("build %s: %v", recipePath, err)
	}
	t.Logf("build %s: %d layers in %.1fs", recipePath, len(res), time.Since(start).Seconds())
	src, err := builder.Source(ctx, st, res[len(res)-1].ImageID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// testWriter sends build progress to the test log (shown with -v or on failure).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	// Only imgctl's step lines: package manager output would drown the log.
	if len(p) > 0 && p[0] == '[' {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Main is TestMain for packages whose tests build or run images: buildah
// re-executes the test binary for chroot isolation and file copies, and those
// children must branch off before the tests run.
func Main(m *testing.M) {
	if buildah.InitReexec() {
		return
	}
	reexec.Init()
	// buildah and containers/storage log through logrus at info level; only
	// their warnings are worth showing next to imgctl's own output.
	logrus.SetLevel(logrus.WarnLevel)
	os.Exit(m.Run())
}
