package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// ciRun is the part of `imgctl ci -o json` the benchmark reads.
type ciRun struct {
	Seconds float64 `json:"seconds"`
	Passed  int     `json:"passed"`
	Failed  int     `json:"failed"`
	Recipes []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Reason string `json:"reason"`
		Build  *struct {
			Seconds float64
			Cached  bool
		}
		Flatten *struct{ Seconds float64 }
		Boot    *struct{ Seconds float64 }
		Tests   []struct{ Seconds float64 }
	} `json:"recipes"`
}

// phases sums the run's time per phase.
func (r ciRun) phases() map[string]float64 {
	p := map[string]float64{"build": 0, "flatten": 0, "boot": 0, "tests": 0}
	for _, x := range r.Recipes {
		if x.Build != nil {
			p["build"] += x.Build.Seconds
		}
		if x.Flatten != nil {
			p["flatten"] += x.Flatten.Seconds
		}
		if x.Boot != nil {
			p["boot"] += x.Boot.Seconds
		}
		for _, t := range x.Tests {
			p["tests"] += t.Seconds
		}
	}
	return p
}

// TestBenchCI runs `imgctl ci` twice over the shipped Debian chain
// (layers/base → compute-base → compute-slurm) in a fresh state directory
// and writes the time of each phase (build, flatten, boot, tests) of both
// runs to bench/results/ci.json. The baseline is the first run; in the
// second nothing changed, so every layer and artifact is reused and the
// run is boot + tests alone: the ratio says what the cache saves. Runs
// only under `make bench` (IMGCTL_BENCH=1).
func TestBenchCI(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	requireVM(t, "mmdebstrap", "mksquashfs", "ssh")
	bin := imgctl(t)
	var agent string
	t.Run("agent", func(t *testing.T) { agent = buildtest.Agent(t) })
	// Its own empty storage: the first run must build every layer from
	// nothing, as a new CI machine would, not reuse the test fixtures' layers.
	scratch := filepath.Join(testenv.Dir, "bench-ci")
	if err := os.RemoveAll(scratch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	graph, run, state := filepath.Join(scratch, "storage"), filepath.Join(scratch, "run"), filepath.Join(scratch, "state")
	recipes := []string{"layers/base.yaml", "layers/compute-base.yaml", "layers/compute-slurm.yaml"}
	args := []string{"--storage-root", graph, "--storage-runroot", run, "--state", state, "-o", "json", "ci", "--boot-timeout", "12m"}
	for _, r := range recipes {
		args = append(args, "--recipes", filepath.Join(repoRoot(), r))
	}
	figures := map[string]any{"recipes": recipes, "date": time.Now().UTC().Format(time.RFC3339)}
	var runs []ciRun
	for _, name := range []string{"first", "unchanged"} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(cmd.Environ(), "IMGCTL_AGENT="+agent)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		cancel()
		var r ciRun
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			t.Fatalf("%s run: %v, %v\n%s", name, err, jerr, errb.String())
		}
		if err != nil {
			for _, x := range r.Recipes {
				if x.Status != "passed" {
					t.Logf("%s: %s %s", x.Name, x.Status, x.Reason)
				}
			}
			t.Fatalf("%s run failed: %v", name, err)
		}
		cached := 0
		for _, x := range r.Recipes {
			if x.Build != nil && x.Build.Cached {
				cached++
			}
		}
		figures[name+"_s"] = r.Seconds
		figures[name+"_phases_s"] = r.phases()
		figures[name+"_cached_layers"] = cached
		t.Logf("%s run: %.1fs (wall %.1fs), phases %v, %d of %d layers cached", name, r.Seconds, time.Since(start).Seconds(), r.phases(), cached, len(r.Recipes))
		runs = append(runs, r)
	}
	p := runs[1].phases()
	figures["unchanged_vs_first_ratio"] = runs[1].Seconds / runs[0].Seconds
	figures["unchanged_boot_tests_share"] = (p["boot"] + p["tests"]) / runs[1].Seconds
	if err := benchresult.Write("ci.json", figures); err != nil {
		t.Fatal(err)
	}
	t.Logf("ci.json: %v", figures)
}
