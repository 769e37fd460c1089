// Package test holds imgctl's end-to-end tests: they run the imgctl binary as
// users do, against real peers (namespaces, registry, QEMU).
package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// repoRoot is the source tree these tests belong to.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// imgctl builds the binary once per test run (cgo and tags as the Makefile sets).
func imgctl(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imgctl-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "imgctl")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/imgctl")
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build imgctl: %v", buildErr)
	}
	return binPath
}

// run runs imgctl with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(imgctl(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestHelpEverywhere walks the whole command tree: every command answers
// --help with exit 0, and every runnable command shows an example.
func TestHelpEverywhere(t *testing.T) {
	var walk func(path []string)
	seen := 0
	walk = func(path []string) {
		out, errOut, code := run(t, append(path, "--help")...)
		if code != 0 {
			t.Errorf("imgctl %s --help: exit %d: %s", strings.Join(path, " "), code, errOut)
			return
		}
		seen++
		sub := subcommands(out)
		if len(path) > 0 && len(sub) == 0 && !strings.Contains(out, "Examples:") {
			t.Errorf("imgctl %s --help has no example", strings.Join(path, " "))
		}
		for _, s := range sub {
			if s == "help" || s == "completion" {
				continue
			}
			walk(append(append([]string{}, path...), s))
		}
	}
	walk(nil)
	if seen < 15 {
		t.Errorf("only %d commands found; the walk is broken", seen)
	}
}

// subcommands parses the "Available Commands:" block of cobra's help.
func subcommands(help string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(l, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(l) == "":
			in = false
		case in:
			out = append(out, strings.Fields(l)[0])
		}
	}
	return out
}

func TestExitCodesAndRecipeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\npackges: [vim]\n"), 0o644)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"images", "--bogus"}, 2, "unknown flag"},
		{"missing args", []string{"inspect"}, 2, "accepts 1 arg"},
		{"bad output format", []string{"artifacts", "ls", "-o", "xml"}, 1, "unknown output format"},
		{"lint names file and line", []string{"lint", bad}, 1, "bad.yaml:4: unknown field \"packges\""},
		{"shipped recipes lint clean", []string{"lint", filepath.Join(repoRoot(), "layers/base.yaml"), filepath.Join(repoRoot(), "layers/compute-base.yaml"),
			filepath.Join(repoRoot(), "layers/compute-slurm.yaml"), filepath.Join(repoRoot(), "layers/el9-base.yaml"), filepath.Join(repoRoot(), "layers/el9-compute.yaml")}, 0, ""},
		{"unset variable", []string{"lint", "--set", "X=1", filepath.Join(repoRoot(), "layers/compute-slurm.yaml")}, 0, ""},
		{"bad --set", []string{"build", "--set", "novalue", bad}, 2, "want KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, append([]string{"--state", dir}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	out, errOut, code := run(t, "--state", t.TempDir(), "artifacts", "ls", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("artifacts ls -o json on an empty state: exit %d, %q %q", code, out, errOut)
	}
}
