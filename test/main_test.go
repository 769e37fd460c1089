package test

import (
	"testing"

	"github.com/imgctl/imgctl/builder/buildtest"
)

// TestMain lets buildah re-execute the test binary (chroot isolation), which
// the tests that build their fixture images need.
func TestMain(m *testing.M) { buildtest.Main(m) }
