// Package recipe reads imgctl's layered YAML recipes: strict decoding with
// file:line errors, ${VAR} expansion, parent chains and cache keys. It does not
// build anything; package builder does.
package recipe

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imgctl/imgctl/images"
)

// Scratch is the parent value for a recipe that bootstraps a root from nothing.
const Scratch = "scratch"

// Recipe is one YAML file: one layer on top of its parent.
type Recipe struct {
	Name           string            `yaml:"name" json:"name"`
	Parent         string            `yaml:"parent" json:"parent"`
	Bootstrap      *Bootstrap        `yaml:"bootstrap,omitempty" json:"bootstrap,omitempty"`
	PackageManager string            `yaml:"package_manager,omitempty" json:"package_manager,omitempty"`
	Repos          []Repo            `yaml:"repos,omitempty" json:"repos,omitempty"`
	Packages       []string          `yaml:"packages,omitempty" json:"packages,omitempty"`
	PackageGroups  []string          `yaml:"package_groups,omitempty" json:"package_groups,omitempty"`
	Files          []File            `yaml:"files,omitempty" json:"files,omitempty"`
	Run            []string          `yaml:"run,omitempty" json:"run,omitempty"`
	Env            map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Labels         map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Boot           *images.BootSpec  `yaml:"boot,omitempty" json:"boot,omitempty"`
	Publish        *Publish          `yaml:"publish,omitempty" json:"publish,omitempty"`
	Test           []string          `yaml:"test,omitempty" json:"test,omitempty"`

	// Path is the file the recipe was read from (absolute).
	Path string `yaml:"-" json:"-"`
	// ParentRecipe is the loaded parent when Parent names a recipe file.
	ParentRecipe *Recipe `yaml:"-" json:"-"`
	// lines maps field paths ("files[0].src") to their line, for later errors.
	lines map[string]int
}

// Bootstrap makes the first layer of a scratch image.
type Bootstrap struct {
	Distro     string   `yaml:"distro" json:"distro"`                             // debian | ubuntu | el
	Suite      string   `yaml:"suite,omitempty" json:"suite,omitempty"`           // bookworm, jammy; EL: release version (9)
	Variant    string   `yaml:"variant,omitempty" json:"variant,omitempty"`       // mmdebstrap variant (minbase default)
	Mirror     string   `yaml:"mirror,omitempty" json:"mirror,omitempty"`         // default: the build host's apt sources
	Components []string `yaml:"components,omitempty" json:"components,omitempty"` // default: main
	Include    []string `yaml:"include,omitempty" json:"include,omitempty"`       // packages installed by the bootstrap itself
	Tool       string   `yaml:"tool,omitempty" json:"tool,omitempty"`             // mmdebstrap | debootstrap | dnf (default per distro)
}

// Repo is an extra package repository.
type Repo struct {
	Name       string   `yaml:"name" json:"name"`
	URL        string   `yaml:"url" json:"url"`
	Suite      string   `yaml:"suite,omitempty" json:"suite,omitempty"`           // apt
	Components []string `yaml:"components,omitempty" json:"components,omitempty"` // apt
	Key        string   `yaml:"key,omitempty" json:"key,omitempty"`               // key file, relative to the recipe
	GPGCheck   *bool    `yaml:"gpgcheck,omitempty" json:"gpgcheck,omitempty"`     // dnf/zypper
}

// File copies src (relative to the recipe file) to dest in the image.
type File struct {
	Src   string `yaml:"src" json:"src"`
	Dest  string `yaml:"dest" json:"dest"`
	Mode  string `yaml:"mode,omitempty" json:"mode,omitempty"`   // octal, e.g. "0644"
	Owner string `yaml:"owner,omitempty" json:"owner,omitempty"` // uid:gid or user:group
}

// Publish says where `imgctl publish` pushes the image by default.
type Publish struct {
	Registry string   `yaml:"registry" json:"registry"`
	Tags     []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Package managers.
const (
	Apt    = "apt"
	Dnf    = "dnf"
	Zypper = "zypper"
)

// Error is a problem at a place in a recipe file.
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// errorf makes an Error at the line of field (a path such as "files[0].src").
func (r *Recipe) errorf(field, format string, args ...any) *Error {
	return &Error{File: r.Path, Line: r.lines[field], Msg: fmt.Sprintf(format, args...)}
}

// Dir is the directory of the recipe file; relative paths resolve against it.
func (r *Recipe) Dir() string { return filepath.Dir(r.Path) }

// ParentIsRecipe reports whether Parent names another recipe file.
func (r *Recipe) ParentIsRecipe() bool {
	return strings.HasSuffix(r.Parent, ".yaml") || strings.HasSuffix(r.Parent, ".yml")
}

// EffectivePackageManager is the recipe's package manager or the nearest
// ancestor's, defaulting from the bootstrap distro.
func (r *Recipe) EffectivePackageManager() string {
	for c := r; c != nil; c = c.ParentRecipe {
		if c.PackageManager != "" {
			return c.PackageManager
		}
		if c.Bootstrap != nil {
			if c.Bootstrap.Distro == "el" {
				return Dnf
			}
			return Apt
		}
	}
	return Apt
}

// EffectiveBoot is the recipe's boot spec or the nearest ancestor's (inherited).
func (r *Recipe) EffectiveBoot() *images.BootSpec {
	for c := r; c != nil; c = c.ParentRecipe {
		if c.Boot != nil {
			return c.Boot
		}
	}
	return nil
}
