package builder

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"go.podman.io/buildah"

	"github.com/imgctl/imgctl/dracut"
)

// Where bootable images get imgctl's node-side pieces.
const (
	dracutModulesDir = "/usr/lib/dracut/modules.d"
	agentPath        = dracutModulesDir + "/90imgctl/imgctl-agent"
)

// DefaultAgent finds imgctl-agent: $IMGCTL_AGENT, else next to this executable.
func DefaultAgent() (string, error) {
	if p := os.Getenv("IMGCTL_AGENT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("IMGCTL_AGENT: %w", err)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "imgctl-agent")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found (build it with `make build`, or set IMGCTL_AGENT)", p)
	}
	return p, nil
}

// dracutModuleFiles returns the embedded dracut module files keyed by their
// path in the image.
func dracutModuleFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(dracut.Modules, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(dracut.Modules, p)
		if err != nil {
			return err
		}
		files[path.Join(dracutModulesDir, p)] = data
		return nil
	})
	return files, err
}

// installBootFiles writes files (image path → content) into the working
// container: shell scripts and the agent executable, the rest read-only.
func installBootFiles(bld *buildah.Builder, files map[string][]byte) error {
	stage, err := os.MkdirTemp("", "imgctl-bootfiles-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := os.FileMode(0o644)
		if filepath.Ext(n) == ".sh" || n == agentPath {
			mode = 0o755
		}
		local := filepath.Join(stage, filepath.Base(n))
		if err := os.WriteFile(local, files[n], mode); err != nil {
			return err
		}
		// A fixed timestamp keeps layers reproducible and lets images that share
		// a kernel share one initramfs (its key sees these files).
		epoch := time.Unix(0, 0)
		if err := bld.Add(n, false, buildah.AddAndCopyOptions{Chown: "0:0", Chmod: fmt.Sprintf("%04o", mode), Timestamp: &epoch}, local); err != nil {
			return fmt.Errorf("install %s: %w", n, err)
		}
		os.Remove(local)
	}
	return nil
}
