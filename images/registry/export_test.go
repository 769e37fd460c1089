package registry

import (
	"os"
	"path/filepath"
	"testing"
)

// TrustSets makes c publish sets without checking them against their
// manifests, so tests can put lying sets in a registry for pull to refuse.
func TrustSets(c *Client) { c.trustSets = true }

// WriteTestOverlay is writeOverlay for the external test package.
var WriteTestOverlay = writeOverlay

// writeOverlay puts a small overlay template tree into a set directory:
// a template, a private file, a subdirectory and a symlink.
func writeOverlay(t *testing.T, setDir string) {
	t.Helper()
	o := filepath.Join(setDir, "overlay")
	if err := os.MkdirAll(filepath.Join(o, "etc/slurm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{"etc/motd.tmpl": 0o644, "etc/slurm/slurm.conf.tmpl": 0o640} {
		if err := os.WriteFile(filepath.Join(o, p), []byte("# "+p+" for {{ .Hostname }}\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("motd", filepath.Join(o, "etc/motd.link")); err != nil {
		t.Fatal(err)
	}
}
