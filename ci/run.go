package ci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/logging"
	"github.com/imgctl/imgctl/internal/vm"
)

// Execute runs the CI over opts.Files and returns what happened to every
// recipe. A recipe's failure does not stop the others; a recipe whose
// parent failed to build is skipped with the parent named. The error is
// for the run as a whole (bad options, or ctx ended: then the Run is
// marked canceled and says how far it got). When Execute returns, no
// machine, namespace or private boot service of the run is left, and no
// tag was pushed for an image that did not pass.
func Execute(ctx context.Context, opts Options) (*Run, error) {
	if opts.Store == nil || opts.StateDir == "" || len(opts.Files) == 0 {
		return nil, errors.New("ci: Options need Files, Store and StateDir")
	}
	if opts.Publish && opts.Publisher == nil {
		return nil, errors.New("ci: Publish needs a Publisher")
	}
	if m := opts.Mode; m != "" && m != inventory.ModeLive && m != inventory.ModeNFS {
		return nil, fmt.Errorf("ci: mode %q: want live or nfs", m)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Mode == "" {
		opts.Mode = inventory.ModeLive
	}
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	if opts.TestTimeout == 0 {
		opts.TestTimeout = 5 * time.Minute
	}
	if opts.LogDir == "" {
		opts.LogDir = filepath.Join(opts.StateDir, "ci", "logs")
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("ci: %w", err)
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	e := &executor{opts: opts, now: now, log: logging.OrDiscard(opts.Log), progress: &lockedWriter{w: progress},
		nodes: &nodeTable{m: map[string]inventory.Node{}}}
	if e.opts.Accel == nil {
		p := &vm.Prober{QEMU: opts.QEMU}
		var once sync.Once
		var choice vm.AccelChoice
		e.opts.Accel = func(ctx context.Context) vm.AccelChoice {
			once.Do(func() { choice = p.Probe(ctx) })
			return choice
		}
	}
	return e.run(ctx), ctx.Err()
}

// executor is one run's state.
type executor struct {
	opts     Options
	now      func() time.Time
	log      *slog.Logger
	progress io.Writer
	nodes    *nodeTable
	publish  sync.Mutex // one publish at a time: the client and the registry prefer it
}

// bootJob is one flattened target waiting for a machine.
type bootJob struct {
	res  *Recipe
	n    *node
	node string // inventory name of its machine
}

func (e *executor) run(ctx context.Context) *Run {
	start := e.now()
	run := &Run{Started: start.UTC(), Mode: string(e.opts.Mode), LogDir: e.opts.LogDir}
	nodes := plan(e.opts.Files, e.opts.Vars)
	results := make([]Recipe, len(nodes))
	byPath := map[string]*Recipe{}
	culprit := map[string]string{} // path → name of the recipe whose build failure stops it

	jobs := make(chan bootJob)
	var wg sync.WaitGroup
	for i := 0; i < e.opts.Jobs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				e.bootAndTest(ctx, j)
				e.finish(ctx, j.n, j.res)
			}
		}()
	}

	bootIndex := 0
	for i, n := range nodes {
		res := &results[i]
		byPath[n.path] = res
		res.Name, res.File, res.Target = n.name(), n.path, n.target
		if n.r != nil {
			res.Parent = n.r.Parent
			if n.parent != nil {
				res.Parent = n.parent.name()
			}
		}
		switch {
		case n.err != nil:
			res.Build = &Step{Status: Failed, Error: n.err.Error()}
			e.fail(res, "recipe does not load: %v", n.err)
			culprit[n.path] = res.Name
			continue
		case ctx.Err() != nil:
			res.Status, res.Reason = Skipped, "run interrupted"
			culprit[n.path] = "(interrupted)"
			continue
		case n.parent != nil && culprit[n.parent.path] != "":
			c := culprit[n.parent.path]
			culprit[n.path] = c
			res.Status = Skipped
			if c == n.parent.name() {
				res.Reason = fmt.Sprintf("parent %s failed to build", c)
			} else {
				res.Reason = fmt.Sprintf("parent %s was skipped: %s failed to build", n.parent.name(), c)
			}
			e.stepf(res.Name, "skipped: %s", res.Reason)
			continue
		}
		if !e.build(ctx, n, res) {
			culprit[n.path] = res.Name
			continue
		}
		if !n.target {
			res.Status = Passed
			continue
		}
		e.packages(ctx, n, res)
		if !res.Bootable {
			if len(n.r.Test) > 0 {
				e.fail(res, "test: commands need a bootable image (a boot: section in the recipe or a parent)")
				continue
			}
			e.finish(ctx, n, res)
			continue
		}
		if !e.flatten(ctx, res) {
			continue
		}
		bootIndex++
		j := bootJob{res: res, n: n, node: e.addNode(res, bootIndex)}
		select {
		case jobs <- j:
		case <-ctx.Done():
			res.Status, res.Reason = Skipped, "run interrupted before its boot"
		}
	}
	close(jobs)
	wg.Wait()

	run.Recipes = results
	for _, r := range results {
		switch r.Status {
		case Passed:
			run.Passed++
		case Failed:
			run.Failed++
		default:
			run.Skipped++
		}
		if r.Boot != nil && run.Accel == "" {
			run.Accel = r.Boot.Accel
		}
	}
	run.Canceled = ctx.Err() != nil
	run.Seconds = e.now().Sub(start).Seconds()
	fmt.Fprintf(e.progress, "ci: %d passed, %d failed, %d skipped in %.1fs\n", run.Passed, run.Failed, run.Skipped, run.Seconds)
	return run
}

// fail marks res failed with a one-line reason.
func (e *executor) fail(res *Recipe, format string, args ...any) {
	res.Status = Failed
	res.Reason = firstLine(fmt.Sprintf(format, args...))
	e.stepf(res.Name, "FAILED: %s", res.Reason)
}

// stepf prints one progress line for a recipe.
func (e *executor) stepf(name, format string, args ...any) {
	fmt.Fprintf(e.progress, "ci %s: %s\n", name, fmt.Sprintf(format, args...))
}

// build builds n's layer; its output goes to <LogDir>/<name>/build.log.
func (e *executor) build(ctx context.Context, n *node, res *Recipe) bool {
	rel := filepath.Join(res.Name, "build.log")
	f, err := createLog(e.opts.LogDir, rel)
	if err != nil {
		res.Build = &Step{Status: Failed, Error: err.Error()}
		e.fail(res, "%v", err)
		return false
	}
	defer f.Close()
	e.stepf(res.Name, "build")
	b := builder.New(e.opts.Store, builder.Options{Log: e.opts.Log, Progress: f, NoCache: e.opts.NoCache, Agent: e.opts.Agent})
	start := time.Now()
	br, err := b.BuildLayer(ctx, n.r)
	res.Build = &Step{Seconds: time.Since(start).Seconds(), Log: rel}
	if err != nil {
		res.Build.Status, res.Build.Error = Failed, err.Error()
		fmt.Fprintf(f, "\n%v\n", err)
		if ctx.Err() != nil {
			res.Build.Status, res.Status, res.Reason = Skipped, Skipped, "run interrupted during its build"
			return false
		}
		e.fail(res, "build failed: %s", firstLine(err.Error()))
		return false
	}
	res.Build.Status, res.Build.Cached = Passed, br.Cached
	res.ImageID, res.CacheKey, res.Bootable = br.ImageID, br.CacheKey, br.Bootable
	if size, err := e.opts.Store.ImageSize(br.ImageID); err == nil {
		res.ImageSize = size
	}
	state := "built"
	if br.Cached {
		state = "cached"
	}
	e.stepf(res.Name, "%s %s in %.1fs", state, br.Tags[1], res.Build.Seconds)
	return true
}

// flatten builds (or reuses) the image's boot artifacts.
func (e *executor) flatten(ctx context.Context, res *Recipe) bool {
	rel := filepath.Join(res.Name, "flatten.log")
	f, err := createLog(e.opts.LogDir, rel)
	if err != nil {
		e.fail(res, "%v", err)
		return false
	}
	defer f.Close()
	start := time.Now()
	res.Flatten = &Step{Log: rel}
	entry, err := func() (*images.Entry, error) {
		src, err := builder.Source(ctx, e.opts.Store, res.ImageID, e.opts.Log)
		if err != nil {
			return nil, err
		}
		return artifacts.Build(ctx, src, images.NewStore(e.opts.StateDir), artifacts.Options{StateDir: e.opts.StateDir, Log: e.opts.Log, Progress: f})
	}()
	res.Flatten.Seconds = time.Since(start).Seconds()
	if err != nil {
		res.Flatten.Status, res.Flatten.Error = Failed, err.Error()
		fmt.Fprintf(f, "\n%v\n", err)
		if ctx.Err() != nil {
			res.Flatten.Status, res.Status, res.Reason = Skipped, Skipped, "run interrupted during its flatten"
			return false
		}
		e.fail(res, "flatten failed: %v", err)
		return false
	}
	res.Flatten.Status = Passed
	res.Digest = entry.Manifest.ImageDigest
	res.RootSize = entry.Manifest.Artifacts[images.RootFS].Size
	e.stepf(res.Name, "artifacts %s in %.1fs", entry.Dir, res.Flatten.Seconds)
	return true
}

// finish decides a target that got through its build (and boot and tests,
// when bootable): passed, then published when asked for.
func (e *executor) finish(ctx context.Context, n *node, res *Recipe) {
	if res.Status == Failed || res.Status == Skipped {
		return
	}
	res.Status = Passed
	if !e.opts.Publish {
		return
	}
	if ctx.Err() != nil {
		res.Publish = &Publish{Step: Step{Status: Skipped, Error: "run interrupted"}}
		return
	}
	if e.opts.Registry == "" && n.r.Publish == nil {
		res.Publish = &Publish{Step: Step{Status: Skipped, Error: "no publish: section in the recipe and no --registry"}}
		e.stepf(res.Name, "not published: %s", res.Publish.Error)
		return
	}
	e.publish.Lock()
	defer e.publish.Unlock()
	start := time.Now()
	_, keyed := builder.Tags(res.Name, res.CacheKey)
	pr, err := e.opts.Publisher.Publish(ctx, registry.PublishRequest{Image: keyed, Registry: e.opts.Registry, Now: e.now()})
	res.Publish = &Publish{Step: Step{Seconds: time.Since(start).Seconds()}}
	if err != nil {
		res.Publish.Status, res.Publish.Error = Failed, err.Error()
		e.fail(res, "publish failed: %v", err)
		return
	}
	res.Publish.Status, res.Publish.Repository, res.Publish.Tags, res.Publish.Digest = Passed, pr.Repository, pr.Tags, pr.ImageDigest
	e.stepf(res.Name, "published %s:%v in %.1fs", pr.Repository, pr.Tags, res.Publish.Seconds)
	if err := e.recordPublished(res); err != nil {
		e.stepf(res.Name, "warning: %v", err)
	}
}

// createLog creates <dir>/<rel>, and its directory.
func createLog(dir, rel string) (*os.File, error) {
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return f, nil
}

// lockedWriter serialises writes of concurrent boots' progress lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
