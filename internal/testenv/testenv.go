// Package testenv gives imgctl's tests the shared, slow-to-make things they need
// (a container storage that keeps built test images between runs, a lock to
// serialise heavy steps across test packages) and the skips for missing root.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgctl/imgctl/internal/cstore"
)

// Dir is where tests keep state that is worth reusing between runs (built
// images, their artifacts). `make clean-test` removes it. $IMGCTL_TEST_DIR
// moves it (set once, before the tests start): a private copy for a
// benchmark that must not queue behind other builds of the shared one.
var Dir = dirFromEnv()

func dirFromEnv() string {
	if d := os.Getenv("IMGCTL_TEST_DIR"); d != "" {
		return d
	}
	return "/var/tmp/imgctl-test"
}

// RequireRoot skips t unless it runs as root (namespaces, mounts, chroot).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// RequireCommands skips t when a command it needs is not installed; `make test`
// installs them all, so a skip here means the test was run by hand.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("needs %s (run `make deps`)", n)
		}
	}
}

// Storage returns the container storage shared by all test packages. Images
// built there stay cached, so only the first run pays for bootstrapping.
func Storage(t testing.TB) cstore.Options {
	t.Helper()
	root := filepath.Join(Dir, "storage")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	return cstore.Options{GraphRoot: root, RunRoot: filepath.Join(Dir, "run")}
}

// StateDir returns the artifact state directory shared by test packages.
func StateDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(Dir, "state")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// Lock takes an exclusive lock named name across processes (test packages run
// in parallel) until the test ends. Use it around building shared fixtures.
func Lock(t testing.TB, name string) {
	t.Helper()
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(Dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	})
}
