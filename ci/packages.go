package ci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// PackageDiff compares an image's installed packages with those of the
// image this CI last published for the recipe.
type PackageDiff struct {
	// Previous names the image compared with ("" = none published yet).
	Previous   string    `json:"previous,omitempty"`
	PreviousAt time.Time `json:"previous_at,omitempty"`
	Count      int       `json:"count"` // packages in this image
	Added      []Package `json:"added,omitempty"`
	Removed    []Package `json:"removed,omitempty"`
	Upgraded   []Change  `json:"upgraded,omitempty"` // any version change, up or down
	Error      string    `json:"error,omitempty"`    // why there is no list
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Change is a package whose version changed.
type Change struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// published is what <state>/ci/published/<recipe>.json keeps of the last
// image the CI published for a recipe: its package list, read from the
// image's own package database when it was published.
type published struct {
	Ref      string            `json:"ref"`
	Digest   string            `json:"digest"`
	At       time.Time         `json:"at"`
	Packages map[string]string `json:"packages"`
}

// dpkgStatus is the dpkg database in an image's root.
const dpkgStatus = "var/lib/dpkg/status"

// ReadDpkgStatus returns the installed packages (name → version) of a dpkg
// status file. Multi-arch packages of a foreign architecture are named
// name:arch.
func ReadDpkgStatus(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name, version, arch, status string
	flush := func() {
		if name != "" && strings.HasSuffix(status, " installed") {
			if arch != "" && arch != "all" && arch != "amd64" {
				name += ":" + arch
			}
			out[name] = version
		}
		name, version, arch, status = "", "", "", ""
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			name = v
		case "Version":
			version = v
		case "Architecture":
			arch = v
		case "Status":
			status = v
		}
	}
	flush()
	return out, sc.Err()
}

// Diff compares two package lists.
func Diff(old, cur map[string]string) (added, removed []Package, changed []Change) {
	for n, v := range cur {
		ov, had := old[n]
		switch {
		case !had:
			added = append(added, Package{n, v})
		case ov != v:
			changed = append(changed, Change{n, ov, v})
		}
	}
	for n, v := range old {
		if _, ok := cur[n]; !ok {
			removed = append(removed, Package{n, v})
		}
	}
	sort.Slice(added, func(i, j int) bool { return added[i].Name < added[j].Name })
	sort.Slice(removed, func(i, j int) bool { return removed[i].Name < removed[j].Name })
	sort.Slice(changed, func(i, j int) bool { return changed[i].Name < changed[j].Name })
	return added, removed, changed
}

// packages reads the target's package database and diffs it against the
// record of its last publish. A problem is noted, never fatal: the list is
// for the report.
func (e *executor) packages(ctx context.Context, n *node, res *Recipe) {
	res.Packages = &PackageDiff{}
	cur, err := e.imagePackages(ctx, res.ImageID)
	if err != nil {
		res.Packages.Error = err.Error()
		return
	}
	res.pkgs = cur
	res.Packages.Count = len(cur)
	prev, err := readPublished(e.publishedPath(res.Name))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			res.Packages.Error = err.Error()
		}
		return
	}
	res.Packages.Previous, res.Packages.PreviousAt = prev.Ref+"@"+prev.Digest, prev.At
	res.Packages.Added, res.Packages.Removed, res.Packages.Upgraded = Diff(prev.Packages, cur)
}

// imagePackages mounts the image read-only and reads its dpkg database.
func (e *executor) imagePackages(ctx context.Context, id string) (map[string]string, error) {
	src, err := builder.Source(ctx, e.opts.Store, id, e.opts.Log)
	if err != nil {
		return nil, err
	}
	root, unmount, err := src.Mount(ctx)
	if err != nil {
		return nil, err
	}
	defer unmount()
	data, err := os.ReadFile(filepath.Join(root, dpkgStatus))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no dpkg database in the image (only dpkg is read so far)")
	}
	if err != nil {
		return nil, err
	}
	return ReadDpkgStatus(bytes.NewReader(data))
}

func (e *executor) publishedPath(name string) string {
	return filepath.Join(e.opts.StateDir, "ci", "published", name+".json")
}

func readPublished(path string) (*published, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p published
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// recordPublished keeps the package list of what was just published, for
// the next run's diff.
func (e *executor) recordPublished(res *Recipe) error {
	if res.pkgs == nil || res.Publish == nil {
		return nil
	}
	ref := res.Publish.Repository
	if len(res.Publish.Tags) > 0 {
		ref += ":" + res.Publish.Tags[0]
	}
	data, err := json.MarshalIndent(published{Ref: ref, Digest: res.Publish.Digest, At: e.now().UTC(), Packages: res.pkgs}, "", "  ")
	if err != nil {
		return err
	}
	p := e.publishedPath(res.Name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("record publish: %w", err)
	}
	return atomicfile.WriteFile(p, data, 0o644)
}
