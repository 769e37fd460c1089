package test

import (
	"github.com/imgctl/imgctl/images"
	"testing"
)

// TestCloudInitBoot boots one QEMU node with Debian's cloud-init.
func TestCloudInitBoot(t *testing.T) {
	requireVM(t, "mmdebstrap", "mksquashfs", "ssh-keygen")
	set := cloudInitArtifacts(t)
	t.Logf("artifacts %s", set.Dir)
}

// cloudInitArtifacts builds boot-cloudinit (boot-tiny plus cloud-init).
func cloudInitArtifacts(t *testing.T) *images.Entry {
	return recipeArtifacts(t, "test/fixtures/layers/boot-cloudinit.yaml")
}
