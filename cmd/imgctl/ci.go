package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/ci"
	"github.com/imgctl/imgctl/ci/report"
)

func addCICommand(root *cobra.Command, g *globals) {
	var (
		recipes, sets        []string
		rf                   registryFlags
		opts                 ci.Options
		mode, reportDir, acc string
	)
	c := &cobra.Command{
		Use:   "ci",
		Short: "Nightly image CI: build every recipe, boot each bootable one in QEMU, run its tests, publish what passed",
		Long: `ci builds the DAG of the recipes given with --recipes (each parent once,
cached layers reused), flattens the bootable ones into boot artifacts, boots
each in QEMU through a private 'imgctl serve' (as 'imgctl vm boot' does, as
node ci-<recipe>), and runs the recipe's test: commands on the booted node
over SSH as root (a key made for the boot goes into the node's overlay; the
node's own host key from <state>/hostkeys is the only one trusted). Each
command's output, exit code and time are kept.

A failure does not stop the other recipes; a recipe whose parent failed to
build is skipped, naming the parent. With --publish, only images whose build,
boot and tests all passed are pushed (with their artifacts), tagged by the
recipe's publish: templates ({{ .Date }}, {{ .CacheKey }}, ...). --report DIR
writes junit.xml, index.html (offline, no scripts) and history.json (the last
runs, shown as a trend), with each recipe's logs under DIR/logs/.

Exit status 1 when anything failed or was skipped. Ctrl-C stops the run:
machines, namespaces and boot services are removed, and no tag is pushed for
an image that did not pass (tags are pushed last, after image and artifacts).`,
		Example: `  imgctl ci --recipes layers/
  imgctl ci --recipes layers/compute-slurm.yaml --mode nfs --jobs 2 -o json
  imgctl ci --recipes layers/ --publish --registry 127.0.0.1:5000/cluster --tls-verify=false --report /srv/ci/report`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode != string(inventory.ModeLive) && mode != string(inventory.ModeNFS) {
				return &usageError{msg: fmt.Sprintf("--mode %q: want live or nfs", mode)}
			}
			if opts.Registry != "" && !opts.Publish {
				return &usageError{msg: "--registry is for --publish"}
			}
			set, err := parseSet(sets)
			if err != nil {
				return err
			}
			accel, err := accelFlag(acc)
			if err != nil {
				return err
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			files, err := ci.RecipeFiles(recipes)
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			ctx := cmd.Context()
			st, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer st.Shutdown(false)
			// The private boot services record on the state directory's files.
			bs, err := g.openStoreAt(ctx, "", false)
			if err != nil {
				return err
			}
			defer bs.Close()
			opts.Files, opts.Vars = files, recipe.Vars{Set: set, Lookup: os.LookupEnv}
			opts.Store, opts.StateDir = st, g.stateDir
			opts.Mode, opts.Accel = inventory.BootMode(mode), accel
			opts.States, opts.HostKeys = bs, bs
			opts.Progress = g.progressWriter()
			if g.verbose { // the packages' info lines repeat the progress lines
				opts.Log = g.logger()
			}
			if opts.Publish {
				opts.Publisher = registryClientOn(g, &rf, st)
			}
			if reportDir != "" {
				if reportDir, err = filepath.Abs(reportDir); err != nil {
					return err
				}
				opts.LogDir = filepath.Join(reportDir, "logs")
			}
			run, runErr := ci.Execute(ctx, opts)
			if run == nil {
				return runErr
			}
			if reportDir != "" {
				if err := report.Write(reportDir, run); err != nil {
					return err
				}
				fmt.Fprintf(g.progressWriter(), "ci: report in %s\n", filepath.Join(reportDir, report.HTMLFile))
			}
			if err := p.Value(run, func(w io.Writer) error { return printCIRun(w, run) }); err != nil {
				return err
			}
			if runErr != nil {
				return fmt.Errorf("ci: %w", runErr)
			}
			if !run.OK() {
				return errSilent
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&recipes, "recipes", []string{"layers"}, "recipe file, or directory of *.yaml recipes (repeatable)")
	fl.StringArrayVar(&sets, "set", nil, "set a recipe variable (KEY=VALUE); wins over the environment")
	fl.BoolVar(&opts.NoCache, "no-cache", false, "rebuild every layer")
	fl.IntVar(&opts.Jobs, "jobs", 1, "nodes booted and tested at once (builds run one at a time)")
	fl.StringVar(&mode, "mode", string(inventory.ModeLive), "boot mode: live or nfs")
	fl.DurationVar(&opts.BootTimeout, "boot-timeout", 10*time.Minute, "give up on a boot (tests included) after this long")
	fl.DurationVar(&opts.TestTimeout, "test-timeout", 5*time.Minute, "give up on one test command after this long")
	fl.IntVar(&opts.MemoryMiB, "memory", 1024, "guest memory in MiB")
	fl.StringVar(&acc, "accel", "auto", "QEMU accelerator: auto (KVM when it really works), kvm or tcg")
	fl.BoolVar(&opts.Publish, "publish", false, "publish the images that passed (image and boot artifacts)")
	fl.StringVar(&opts.Registry, "registry", "", "repository prefix to publish to (default: each recipe's publish.registry)")
	fl.StringVar(&reportDir, "report", "", "write junit.xml, index.html and history.json (and the logs) into this directory")
	rf.add(c)
	root.AddCommand(c)
}

// printCIRun is the text form of a run: one line per recipe, then why each
// failure failed.
func printCIRun(w io.Writer, run *ci.Run) error {
	fmt.Fprintf(w, "%-24s %-8s %-14s %-14s %-14s %-10s %s\n", "RECIPE", "STATUS", "BUILD", "FLATTEN", "BOOT", "TESTS", "PUBLISH")
	step := func(s *ci.Step) string {
		if s == nil {
			return "-"
		}
		out := fmt.Sprintf("%s %.1fs", s.Status, s.Seconds)
		if s.Cached {
			out = fmt.Sprintf("cached %.1fs", s.Seconds)
		}
		return out
	}
	for _, r := range run.Recipes {
		boot, pub, tests := "-", "-", "-"
		if r.Boot != nil {
			boot = step(&r.Boot.Step)
		}
		if r.Publish != nil {
			pub = string(r.Publish.Status)
			if len(r.Publish.Tags) > 0 {
				pub += " " + r.Publish.Repository + ":" + strings.Join(r.Publish.Tags, ",")
			}
		}
		if len(r.Tests) > 0 {
			n := 0
			for _, t := range r.Tests {
				if t.Status == ci.Passed {
					n++
				}
			}
			tests = fmt.Sprintf("%d/%d", n, len(r.Tests))
		}
		fmt.Fprintf(w, "%-24s %-8s %-14s %-14s %-14s %-10s %s\n", r.Name, r.Status, step(r.Build), step(r.Flatten), boot, tests, pub)
	}
	for _, r := range run.Recipes {
		if r.Reason != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Name, r.Reason)
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped in %.1fs; logs in %s\n", run.Passed, run.Failed, run.Skipped, run.Seconds, run.LogDir)
	return nil
}
