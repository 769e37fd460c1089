package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/imgctl/imgctl/ci"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// KeepRuns is how many runs history.json keeps.
const KeepRuns = 30

// History is history.json: the last runs, oldest first.
type History struct {
	Runs []HistoryRun `json:"runs"`
}

// HistoryRun is one run in the history.
type HistoryRun struct {
	Started time.Time                `json:"started"`
	Seconds float64                  `json:"seconds"`
	Passed  int                      `json:"passed"`
	Failed  int                      `json:"failed"`
	Skipped int                      `json:"skipped"`
	Recipes map[string]HistoryRecipe `json:"recipes"`
}

// HistoryRecipe is one recipe's outcome in a past run.
type HistoryRecipe struct {
	Status  ci.Status `json:"status"`
	Seconds float64   `json:"seconds"` // build + flatten + boot + tests + publish
}

// ReadHistory reads path; a missing file is an empty history.
func ReadHistory(path string) (*History, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &History{}, nil
	}
	if err != nil {
		return nil, err
	}
	var h History
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &h, nil
}

// Add appends run and drops the oldest runs beyond KeepRuns.
func (h *History) Add(run *ci.Run) {
	hr := HistoryRun{Started: run.Started, Seconds: run.Seconds, Passed: run.Passed, Failed: run.Failed, Skipped: run.Skipped, Recipes: map[string]HistoryRecipe{}}
	for _, r := range run.Recipes {
		hr.Recipes[r.Name] = HistoryRecipe{Status: r.Status, Seconds: recipeSeconds(r)}
	}
	h.Runs = append(h.Runs, hr)
	if len(h.Runs) > KeepRuns {
		h.Runs = h.Runs[len(h.Runs)-KeepRuns:]
	}
}

// write stores h atomically.
func (h *History) write(path string) error {
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o644)
}

// recipeSeconds is the time a recipe's steps took.
func recipeSeconds(r ci.Recipe) float64 {
	var s float64
	for _, st := range []*ci.Step{r.Build, r.Flatten} {
		if st != nil {
			s += st.Seconds
		}
	}
	if r.Boot != nil {
		s += r.Boot.Seconds
	}
	for _, t := range r.Tests {
		s += t.Seconds
	}
	if r.Publish != nil {
		s += r.Publish.Seconds
	}
	return s
}
