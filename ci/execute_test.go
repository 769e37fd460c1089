package ci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/internal/testenv"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

// TestExecuteDAG builds a small DAG for real (no boots: nothing in it is
// bootable): a passing child of the tiny fixture, a recipe whose build
// fails, its child (skipped, naming it) and a non-bootable recipe with
// tests (failed: tests need a boot). Then the same run with a canceled
// context builds nothing.
func TestExecuteDAG(t *testing.T) {
	testenv.RequireRoot(t)
	// Each helper holds the shared build lock until its test ends: take
	// it once at a time (a second flock in one test would wait for itself).
	t.Run("fixture", func(t *testing.T) { buildtest.Image(t, "test/fixtures/layers/tiny.yaml") })
	st := buildtest.Store(t)
	testenv.Lock(t, "build")
	tiny := filepath.Join(buildtest.RepoRoot(), "test/fixtures/layers/tiny.yaml")
	dir := writeRecipes(t, map[string]string{
		"ok.yaml":     "name: imgctl-test-ci-ok\nparent: " + tiny + "\nrun: [\"echo ok > /etc/ci-ok\"]\n",
		"broken.yaml": "name: imgctl-test-ci-broken\nparent: " + tiny + "\nrun: [\"echo going down; exit 7\"]\n",
		"orphan.yaml": "name: imgctl-test-ci-orphan\nparent: broken.yaml\n",
		"grand.yaml":  "name: imgctl-test-ci-grand\nparent: orphan.yaml\n",
		"tests.yaml":  "name: imgctl-test-ci-tests\nparent: ok.yaml\ntest: [\"true\"]\n",
	})
	files, err := RecipeFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Files: files, Vars: recipe.Vars{Lookup: os.LookupEnv}, Store: st, StateDir: t.TempDir(), Progress: testWriter{t}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run, err := Execute(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Recipe{}
	for _, r := range run.Recipes {
		byName[r.Name] = r
	}
	for _, tt := range []struct {
		name, status, reason string
	}{
		{"tiny", "passed", ""},
		{"imgctl-test-ci-ok", "passed", ""},
		{"imgctl-test-ci-broken", "failed", "build failed"},
		{"imgctl-test-ci-orphan", "skipped", "parent imgctl-test-ci-broken failed to build"},
		{"imgctl-test-ci-grand", "skipped", "parent imgctl-test-ci-orphan was skipped: imgctl-test-ci-broken failed to build"},
		{"imgctl-test-ci-tests", "failed", "test: commands need a bootable image"},
	} {
		r := byName[tt.name]
		if string(r.Status) != tt.status || !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("%s: %s %q, want %s %q", tt.name, r.Status, r.Reason, tt.status, tt.reason)
		}
	}
	if b := byName["imgctl-test-ci-broken"].Build; b == nil || !strings.Contains(b.Error, "going down") || !strings.Contains(b.Error, "exit status 7") {
		t.Errorf("broken build step %+v: want the command's status and last output", b)
	}
	if r := byName["tiny"]; r.Target || r.Build == nil || !r.Build.Cached {
		t.Errorf("tiny: %+v: want a cached ancestor, not a target", r)
	}
	if p := byName["imgctl-test-ci-ok"].Packages; p == nil || p.Count < 50 || p.Error != "" {
		t.Errorf("ok packages: %+v: want the dpkg list of a Debian root", p)
	}
	if log, err := os.ReadFile(filepath.Join(opts.StateDir, "ci", "logs", "imgctl-test-ci-broken", "build.log")); err != nil || !strings.Contains(string(log), "going down") {
		t.Errorf("build.log: %v %q", err, log)
	}
	if run.OK() || run.Passed != 2 || run.Failed != 2 || run.Skipped != 2 {
		t.Errorf("run: passed %d failed %d skipped %d", run.Passed, run.Failed, run.Skipped)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	run, err = Execute(cctx, opts)
	if err == nil || !run.Canceled {
		t.Fatalf("canceled run: err %v, canceled %v", err, run.Canceled)
	}
	for _, r := range run.Recipes {
		if r.Status == Passed || r.Build != nil {
			t.Errorf("canceled run built %s: %+v", r.Name, r)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
