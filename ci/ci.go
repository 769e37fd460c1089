// Package ci is imgctl's nightly image CI: it builds a DAG of recipes (each
// parent once, cached layers reused) with package builder, flattens the
// bootable ones into boot artifacts, boots each in QEMU through the real boot
// service with package bootsvc/vmboot, runs the recipe's `test:` commands on
// the booted node over SSH (vmboot's OnBooted hook: the node's own host key
// checked, a key made for the boot in its overlay), and publishes only the
// images whose build, boot and tests passed. Package ci/report turns a Run
// into JUnit XML, an HTML page and a history.
//
// It sits above builder and bootsvc (it imports both); nothing imports it
// but the CLI.
package ci

import (
	"context"
	"io"
	"log/slog"
	"time"

	"go.podman.io/storage"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/vm"
)

// Publisher pushes an image and its boot artifacts (registry.Client).
type Publisher interface {
	Publish(ctx context.Context, req registry.PublishRequest) (*registry.PublishResult, error)
}

// Options say what to run and where. Files, Store and StateDir are required;
// States and HostKeys when a recipe is bootable; Publisher with Publish.
type Options struct {
	Files []string    // recipe files (RecipeFiles expands directories)
	Vars  recipe.Vars // ${VAR} values

	Store    storage.Store // container storage the images are built into
	StateDir string        // artifacts, host keys, node states, published records
	Agent    builder.AgentLocator
	NoCache  bool

	// Jobs is how many nodes boot and run tests at once; 0 = 1. Builds and
	// flattening run one at a time (one builder, CPU bound).
	Jobs        int
	Mode        inventory.BootMode // live (default) or nfs
	BootTimeout time.Duration      // per boot, tests included; 0 = vmboot.DefaultTimeout
	TestTimeout time.Duration      // per test command; 0 = 5 min
	MemoryMiB   int                // guest memory; 0 = vmboot's default
	Exe         string             // imgctl binary for the private serve; "" = this one
	QEMU        string
	Accel       func(ctx context.Context) vm.AccelChoice // nil = one probe for the run
	States      vmboot.States
	HostKeys    vmboot.HostKeys

	Publish   bool
	Registry  string // repository prefix; "" = each recipe's publish.registry
	Publisher Publisher

	// LogDir gets one directory per recipe: build.log, console.log,
	// serve.log, qemu.log. "" = <StateDir>/ci/logs.
	LogDir   string
	Progress io.Writer // one line per step; nil = none
	Log      *slog.Logger
	Now      func() time.Time // nil = time.Now
}

// Status is the outcome of a recipe or one of its steps.
type Status string

// Statuses.
const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Run is one CI run. Its JSON form is `imgctl ci -o json`'s and
// history.json's source, so the field names are stable.
type Run struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Mode     string    `json:"mode"`
	Accel    string    `json:"accel,omitempty"`
	Passed   int       `json:"passed"`
	Failed   int       `json:"failed"`
	Skipped  int       `json:"skipped"`
	LogDir   string    `json:"log_dir"`
	Recipes  []Recipe  `json:"recipes"`
	Canceled bool      `json:"canceled,omitempty"`
}

// OK reports whether nothing failed or was skipped.
func (r *Run) OK() bool { return r.Failed == 0 && r.Skipped == 0 && !r.Canceled }

// Recipe is what happened to one recipe.
type Recipe struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Parent string `json:"parent,omitempty"` // parent recipe's name, or the parent reference
	// Target is false for an ancestor that is only built for a named recipe.
	Target bool   `json:"target"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"` // why it failed or was skipped, in one line

	ImageID   string `json:"image_id,omitempty"`
	CacheKey  string `json:"cache_key,omitempty"`
	Bootable  bool   `json:"bootable"`
	ImageSize int64  `json:"image_size,omitempty"` // bytes in container storage, all layers
	RootSize  int64  `json:"root_size,omitempty"`  // the root image artifact
	Digest    string `json:"image_digest,omitempty"`

	Build    *Step        `json:"build,omitempty"`
	Flatten  *Step        `json:"flatten,omitempty"`
	Boot     *Boot        `json:"boot,omitempty"`
	Tests    []Test       `json:"tests,omitempty"`
	Publish  *Publish     `json:"publish,omitempty"`
	Packages *PackageDiff `json:"packages,omitempty"`

	pkgs map[string]string // this image's packages, for the publish record
}

// Step is one stage of a recipe.
type Step struct {
	Status  Status  `json:"status"`
	Seconds float64 `json:"seconds"`
	Cached  bool    `json:"cached,omitempty"`
	Error   string  `json:"error,omitempty"`
	Log     string  `json:"log,omitempty"` // relative to Run.LogDir
}

// Boot is the boot stage: vmboot's phases and logs.
type Boot struct {
	Step
	Node       string         `json:"node"`
	Accel      string         `json:"accel,omitempty"`
	Phases     []vmboot.Phase `json:"phases,omitempty"`
	RootMount  string         `json:"root_mount,omitempty"`
	ConsoleLog string         `json:"console_log,omitempty"` // relative to Run.LogDir
	ServeLog   string         `json:"serve_log,omitempty"`
	QEMULog    string         `json:"qemu_log,omitempty"`
}

// Test is one test command run on the booted node.
type Test struct {
	Command  string  `json:"command"`
	Status   Status  `json:"status"`
	ExitCode int     `json:"exit_code"` // -1 when it never ran to an exit
	Seconds  float64 `json:"seconds"`
	Output   string  `json:"output"` // stdout and stderr, the last lines
	Error    string  `json:"error,omitempty"`
}

// Publish is the publish stage.
type Publish struct {
	Step
	Repository string   `json:"repository,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Digest     string   `json:"digest,omitempty"`
}
