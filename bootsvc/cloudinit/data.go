// Package cloudinit is the boot service's cloud-init data: what one group or
// node stores (Data, a public and a secure part each), its validation on
// write, and the merge that turns a node's layers (its groups in order, then
// the node; each public part, then its secure part) into the NoCloud files
// the node's cloud-init reads: meta-data, user-data, vendor-data and
// network-config.
package cloudinit

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Scope says whether a record belongs to a group or a node.
type Scope string

// Scopes.
const (
	Group Scope = "group"
	Node  Scope = "node"
)

// Key names one stored record: a group's or node's public or secure part.
type Key struct {
	Scope  Scope  `yaml:"scope" json:"scope"`
	Name   string `yaml:"name" json:"name"`
	Secure bool   `yaml:"secure,omitempty" json:"secure,omitempty"`
}

func (k Key) String() string {
	s := string(k.Scope) + " " + k.Name
	if k.Secure {
		s += " (secure)"
	}
	return s
}

// nameRE keeps names usable as file names (the file backend stores one
// file per record).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks the key's scope and name.
func (k Key) Validate() error {
	if k.Scope != Group && k.Scope != Node {
		return fmt.Errorf("cloud-init: scope %q: want group or node", k.Scope)
	}
	if !nameRE.MatchString(k.Name) {
		return fmt.Errorf("cloud-init: %s name %q: want letters, digits, '.', '_' or '-'", k.Scope, k.Name)
	}
	return nil
}

// MergeMode is how a record merges onto the layers below it.
type MergeMode string

// Merge modes.
const (
	// Replace (the default, as OpenCHAMI does): each top-level key replaces
	// the same key below.
	Replace MergeMode = "replace"
	// Deep merges mappings key by key and appends lists (write_files,
	// runcmd, packages), so that no layer's entries are lost.
	Deep MergeMode = "deep"
)

// Data is one record: each file's text as written (comments kept), and how
// it merges. The zero Data is "nothing stored".
type Data struct {
	UserData      string    `yaml:"user-data,omitempty" json:"user-data,omitempty"`
	MetaData      string    `yaml:"meta-data,omitempty" json:"meta-data,omitempty"`
	VendorData    string    `yaml:"vendor-data,omitempty" json:"vendor-data,omitempty"`
	NetworkConfig string    `yaml:"network-config,omitempty" json:"network-config,omitempty"`
	Merge         MergeMode `yaml:"merge,omitempty" json:"merge,omitempty"`
	// Disabled keeps the seed off the kernel command line of the node (a
	// node record) or of the group's nodes that have no record of their own.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// IsZero reports whether nothing is stored.
func (d Data) IsZero() bool { return d == Data{} }

// Files lists the parts that are set, in NoCloud order.
func (d Data) Files() []string {
	var out []string
	for _, f := range fileNames {
		if d.text(f) != "" {
			out = append(out, f)
		}
	}
	return out
}

// NoCloud file names.
const (
	MetaData      = "meta-data"
	UserData      = "user-data"
	VendorData    = "vendor-data"
	NetworkConfig = "network-config"
)

var fileNames = []string{MetaData, UserData, VendorData, NetworkConfig}

// IsFile reports whether name is a NoCloud file this package serves.
func IsFile(name string) bool {
	for _, f := range fileNames {
		if f == name {
			return true
		}
	}
	return false
}

func (d Data) text(file string) string {
	switch file {
	case MetaData:
		return d.MetaData
	case UserData:
		return d.UserData
	case VendorData:
		return d.VendorData
	case NetworkConfig:
		return d.NetworkConfig
	}
	return ""
}

// Validate checks every part as cloud-init would read it: user-data and
// vendor-data as #cloud-config YAML mappings (jinja templates, scripts,
// #include lists and MIME bodies pass unparsed), meta-data and
// network-config as YAML mappings. YAML errors name the part, line and key.
func (d Data) Validate() error {
	var errs []error
	switch d.Merge {
	case "", Replace, Deep:
	default:
		errs = append(errs, fmt.Errorf("merge %q: want replace or deep", d.Merge))
	}
	if d.Files() == nil && !d.Disabled {
		errs = append(errs, errors.New("no user-data, meta-data, vendor-data or network-config"))
	}
	for _, f := range fileNames {
		if _, err := parse(f, d.text(f)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Body kinds of user-data and vendor-data.
const (
	headerCloudConfig = "#cloud-config"
	headerJinja       = "## template: jinja"
)

// opaque reports whether a user-data or vendor-data body is one cloud-init
// reads itself (a jinja template, a script, an #include list, MIME) and
// that must pass through untouched.
func opaque(text string) bool {
	first, _, _ := strings.Cut(strings.TrimLeft(text, "\n"), "\n")
	first = strings.TrimSpace(first)
	switch {
	case strings.HasPrefix(first, headerJinja), strings.HasPrefix(first, "#!"),
		strings.HasPrefix(first, "#include"), strings.HasPrefix(first, "#cloud-boothook"),
		strings.HasPrefix(first, "#part-handler"), strings.HasPrefix(strings.ToLower(first), "content-type:"):
		return true
	}
	return false
}
