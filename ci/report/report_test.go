package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/vmboot"
	"github.com/imgctl/imgctl/ci"
)

func sampleRun(dir string, at time.Time) *ci.Run {
	return &ci.Run{
		Started: at, Seconds: 321, Mode: "live", Passed: 1, Failed: 2, Skipped: 1, LogDir: filepath.Join(dir, "logs"),
		Recipes: []ci.Recipe{
			{Name: "good", Target: true, Status: ci.Passed, Bootable: true, ImageSize: 300 << 20, RootSize: 120 << 20,
				Build: &ci.Step{Status: ci.Passed, Cached: true, Seconds: 0.4, Log: "good/build.log"},
				Boot: &ci.Boot{Step: ci.Step{Status: ci.Passed, Seconds: 95}, Node: "ci-good", ConsoleLog: "good/console.log", ServeLog: "good/serve.log",
					Phases: []vmboot.Phase{{Source: "server", Phase: "dhcp", At: 2.5}, {Source: "server", Phase: "booted", At: 95}}},
				Tests:   []ci.Test{{Command: "sshd -t", Status: ci.Passed, Seconds: 0.3}},
				Publish: &ci.Publish{Step: ci.Step{Status: ci.Passed}, Repository: "127.0.0.1:5000/ci/good", Tags: []string{"latest"}},
				Packages: &ci.PackageDiff{Count: 3, Previous: "127.0.0.1:5000/ci/good:latest@sha256:ab",
					Added: []ci.Package{{Name: "openssh-server", Version: "1:9.2"}}, Upgraded: []ci.Change{{Name: "bash", From: "5.1", To: "5.2"}}}},
			{Name: "badtest", Target: true, Status: ci.Failed, Reason: "test failed: false (exit 1)",
				Build: &ci.Step{Status: ci.Passed}, Boot: &ci.Boot{Step: ci.Step{Status: ci.Passed}},
				Tests: []ci.Test{{Command: "echo <oops> && false", Status: ci.Failed, ExitCode: 1, Output: "line1\n<oops>"}}},
			{Name: "broken", Target: true, Status: ci.Failed, Build: &ci.Step{Status: ci.Failed, Error: "broken.yaml: command failed (exit status 3):\n  last output:\n    about to fail"}},
			{Name: "orphan", Target: true, Status: ci.Skipped, Reason: "parent broken failed to build"},
		},
	}
}

// TestWrite writes a report and reads it back: the JUnit cases and
// statuses, the page's rows (escaped), and the history's trend.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	for i := 0; i < KeepRuns+2; i++ {
		if err := Write(dir, sampleRun(dir, t0.Add(time.Duration(i)*24*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}

	data, err := os.ReadFile(filepath.Join(dir, JUnitFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit does not parse: %v", err)
	}
	got := map[string]string{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			st := "passed"
			if c.Failure != nil {
				st = "failed:" + c.Failure.Text
			} else if c.Skipped != nil {
				st = "skipped:" + c.Skipped.Message
			}
			got[s.Name+"/"+c.Name] = st
		}
	}
	for k, want := range map[string]string{
		"good/build": "passed", "good/boot": "passed", "good/test: sshd -t": "passed", "good/publish": "passed",
		"badtest/test: echo <oops> && false": "failed:line1\n<oops>",
		"broken/build":                       "failed:broken.yaml: command failed (exit status 3):\n  last output:\n    about to fail",
		"orphan/build":                       "skipped:parent broken failed to build",
	} {
		if got[k] != want {
			t.Errorf("junit %s = %q, want %q", k, got[k], want)
		}
	}
	if doc.Tests != 9 || doc.Failures != 2 || doc.Skipped != 1 {
		t.Errorf("junit totals tests=%d failures=%d skipped=%d, want 9/2/1", doc.Tests, doc.Failures, doc.Skipped)
	}

	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{
		`data-recipe="good" data-status="passed"`, `data-recipe="orphan" data-status="skipped"`,
		`href="logs/good/console.log"`, `href="logs/good/serve.log"`, "echo &lt;oops&gt; &amp;&amp; false",
		"openssh-server", "5.1", "300.0 MiB", "120.0 MiB", "booted", "parent broken failed to build",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if strings.Contains(html, bad) {
			t.Errorf("page has %q: it must work offline", bad)
		}
	}
	hist, err := ReadHistory(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Runs) != KeepRuns || !hist.Runs[0].Started.Equal(t0.Add(2*24*time.Hour)) {
		t.Errorf("history: %d runs from %v, want %d from the third", len(hist.Runs), hist.Runs[0].Started, KeepRuns)
	}
	if n := strings.Count(html, `<tr><td>12-`) + strings.Count(html, `<tr><td>01-`); n != KeepRuns {
		t.Errorf("trend shows %d runs, want %d", n, KeepRuns)
	}
}
