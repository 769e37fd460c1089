// Package benchresult writes the figures a benchmark measured to
// bench/results/NAME.json, where scripts/bench.sh lists them and people read
// them. Every benchmark writes the same shape: one JSON object, indented by two
// spaces, with a trailing newline; figures are ratios against a baseline
// measured in the same run, next to the raw numbers they came from.
package benchresult

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/imgctl/imgctl/internal/atomicfile"
)

// Dir returns the directory results go to: $IMGCTL_BENCH_DIR when set
// (scripts/bench.sh sets it), otherwise bench/results in the source tree this
// package was compiled from.
func Dir() string {
	if dir := os.Getenv("IMGCTL_BENCH_DIR"); dir != "" {
		return dir
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "bench", "results")
}

// Write replaces Dir()/name with figures as indented JSON (mode 0644),
// creating the directory if needed. The file is written atomically, so a
// reader sees either the previous figures or the new ones. figures is
// usually a map[string]any, whose keys encoding/json sorts.
func Write(name string, figures any) error {
	b, err := json.MarshalIndent(figures, "", "  ")
	if err != nil {
		return fmt.Errorf("bench result %s: %w", name, err)
	}
	return atomicfile.WriteFile(filepath.Join(Dir(), name), append(b, '\n'), 0o644)
}
