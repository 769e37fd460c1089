package registry_test

import (
	"os"
	"testing"

	"go.podman.io/buildah"
	"go.podman.io/storage/pkg/reexec"
)

// TestMain lets buildah and containers/storage re-execute the test binary for
// their helpers (chroot copier, storage mounts).
func TestMain(m *testing.M) {
	if buildah.InitReexec() {
		return
	}
	reexec.Init()
	os.Exit(m.Run())
}
