package recipe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate reports every problem in the recipe at once, each with its line.
// It checks that copied files exist, so it touches the file system.
func (r *Recipe) Validate() error {
	var errs []error
	add := func(e *Error) { errs = append(errs, e) }
	if r.Name == "" {
		add(r.errorf("", "name is required"))
	} else if !nameRE.MatchString(r.Name) {
		add(r.errorf("name", "name %q: use lower-case letters, digits, '.', '_' and '-'", r.Name))
	}
	switch {
	case r.Parent == "":
		add(r.errorf("", "parent is required (a recipe file, an image reference, or %q)", Scratch))
	case r.Parent == Scratch && r.Bootstrap == nil:
		add(r.errorf("parent", "parent is scratch but there is no bootstrap section"))
	case r.Parent != Scratch && r.Bootstrap != nil:
		add(r.errorf("bootstrap", "bootstrap is only allowed when parent is scratch"))
	}
	if b := r.Bootstrap; b != nil {
		switch b.Distro {
		case "debian", "ubuntu":
			if b.Suite == "" {
				add(r.errorf("bootstrap", "bootstrap.suite is required for %s", b.Distro))
			}
			if b.Tool != "" && b.Tool != "mmdebstrap" && b.Tool != "debootstrap" {
				add(r.errorf("bootstrap.tool", "bootstrap.tool %q: want mmdebstrap or debootstrap", b.Tool))
			}
		case "el":
			if b.Suite == "" {
				add(r.errorf("bootstrap", "bootstrap.suite (the EL release, e.g. 9) is required"))
			}
			if b.Mirror == "" {
				add(r.errorf("bootstrap", "bootstrap.mirror (a dnf baseurl with $basearch) is required for el"))
			}
		default:
			add(r.errorf("bootstrap.distro", "bootstrap.distro %q: want debian, ubuntu or el", b.Distro))
		}
	}
	switch r.PackageManager {
	case "", Apt, Dnf, Zypper:
	default:
		add(r.errorf("package_manager", "package_manager %q: want apt, dnf or zypper", r.PackageManager))
	}
	for i, repo := range r.Repos {
		f := fmt.Sprintf("repos[%d]", i)
		if repo.Name == "" || repo.URL == "" {
			add(r.errorf(f, "repos[%d] needs name and url", i))
		}
		if repo.Key != "" {
			if _, err := os.Stat(r.resolve(repo.Key)); err != nil {
				add(r.errorf(f+".key", "repo key %s: %v", repo.Key, errors.Unwrap(err)))
			}
		}
	}
	for i, f := range r.Files {
		field := fmt.Sprintf("files[%d]", i)
		if f.Src == "" || f.Dest == "" {
			add(r.errorf(field, "files[%d] needs src and dest", i))
			continue
		}
		if !strings.HasPrefix(f.Dest, "/") {
			add(r.errorf(field+".dest", "dest %q must be an absolute path in the image", f.Dest))
		}
		if _, err := os.Stat(r.resolve(f.Src)); err != nil {
			add(r.errorf(field+".src", "source %s does not exist (%s)", f.Src, r.resolve(f.Src)))
		}
		if f.Mode != "" {
			if m, err := strconv.ParseUint(f.Mode, 8, 32); err != nil || m > 07777 {
				add(r.errorf(field+".mode", "mode %q is not an octal file mode", f.Mode))
			}
		}
	}
	for k := range r.Env {
		if k == "" || strings.ContainsAny(k, "= ") {
			add(r.errorf("env", "env name %q is not valid", k))
		}
	}
	if b := r.Boot; b != nil {
		switch b.RootFS.Format {
		case "", "squashfs", "erofs":
		default:
			add(r.errorf("boot.rootfs.format", "boot.rootfs.format %q: want squashfs or erofs", b.RootFS.Format))
		}
		switch b.RootFS.Compression {
		case "", "zstd", "xz", "gzip", "lz4", "lz4hc", "none":
		default:
			add(r.errorf("boot.rootfs.compression", "boot.rootfs.compression %q: want zstd, xz, gzip, lz4, lz4hc or none", b.RootFS.Compression))
		}
	}
	if p := r.Publish; p != nil && p.Registry == "" {
		add(r.errorf("publish", "publish.registry is required"))
	}
	for i, t := range r.Test {
		if strings.TrimSpace(t) == "" {
			add(r.errorf(fmt.Sprintf("test[%d]", i), "empty test command"))
		}
	}
	return errors.Join(errs...)
}

// resolve makes a recipe-relative path absolute.
func (r *Recipe) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir(), p)
}

// Resolve is resolve for other packages: a path relative to the recipe file.
func (r *Recipe) Resolve(p string) string { return r.resolve(p) }

// ErrorAt is an error at the line of field (e.g. "files[0].src") of the recipe.
func (r *Recipe) ErrorAt(field, format string, args ...any) error {
	return r.errorf(field, format, args...)
}
