package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imgctl/imgctl/ci"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// Files written into a report directory.
const (
	JUnitFile   = "junit.xml"
	HTMLFile    = "index.html"
	HistoryFile = "history.json"
)

// Write adds run to dir's history.json and writes junit.xml and index.html
// there, each atomically. The run's logs stay where Run.LogDir says (under
// dir when the CI was told so); the page links to them relatively.
func Write(dir string, run *ci.Run) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	hpath := filepath.Join(dir, HistoryFile)
	hist, err := ReadHistory(hpath)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	hist.Add(run)
	if err := hist.write(hpath); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var j bytes.Buffer
	if err := JUnit(&j, run); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, JUnitFile), j.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	base, err := filepath.Rel(dir, run.LogDir)
	if err != nil {
		base = run.LogDir
	}
	var h bytes.Buffer
	if err := HTML(&h, run, hist, base); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, HTMLFile), h.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
