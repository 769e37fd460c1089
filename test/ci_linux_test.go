package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/internal/browsertest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestCINightly runs `imgctl ci` as a nightly job would, over the fixtures
// in test/fixtures/ci: ci-good (boots, its tests pass), ci-badtest (boots,
// one test command fails), ci-broken (fails to build) and its child
// ci-orphan, publishing to Debian's docker-registry on loopback. The run
// must exit 1; the JUnit XML must name every case with its status; only
// ci-good may reach the registry; the HTML report, rendered by headless
// Chromium, must list every recipe with its status. Two QEMU boots in all, side by side (--jobs 2).
func TestCINightly(t *testing.T) {
	requireVM(t, "mmdebstrap", "mksquashfs", "docker-registry", "skopeo", "ssh")
	bin := imgctl(t)
	// Each helper holds the shared build lock until its (sub)test ends, so
	// each gets a subtest of its own.
	t.Run("boot-tiny", func(t *testing.T) { bootArtifacts(t) }) // its artifacts and the initramfs cache
	// The passing images, built under the shared build lock so that the CI
	// run below finds them cached (only ci-broken builds, and fails).
	t.Run("ci-fixtures", func(t *testing.T) { buildtest.Image(t, "test/fixtures/ci/ci-badtest.yaml") })
	// The agent buildtest built into the fixtures: the same bytes, the same
	// cache keys for imgctl ci (its path, outside the agent lock).
	var agent string
	t.Run("agent", func(t *testing.T) { agent = buildtest.Agent(t) })
	if t.Failed() {
		t.FailNow()
	}
	reg := startDockerRegistry(t)
	// A state directory of this test's own that outlives it: the fixtures'
	// artifact sets are reused by digest (flattening is minutes under TCG
	// load), and the record of the last publish gives the next run a
	// package diff.
	testenv.Lock(t, "ci-state")
	state, reportDir := filepath.Join(testenv.Dir, "ci-state"), t.TempDir()
	os.RemoveAll(filepath.Join(state, "cache"))
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	// The initramfs cache of boot-tiny: ci-good has the same kernel and
	// modules, so dracut need not run again.
	if out, err := exec.Command("cp", "-a", filepath.Join(testenv.StateDir(t), "cache"), state).CombinedOutput(); err != nil {
		t.Fatalf("copy initramfs cache: %v: %s", err, out)
	}
	st := testenv.Storage(t)
	args := []string{"--storage-root", st.GraphRoot, "--storage-runroot", st.RunRoot, "--state", state, "-o", "json",
		"ci", "--recipes", filepath.Join(repoRoot(), "test/fixtures/ci"), "--publish", "--registry", reg + "/ci", "--tls-verify=false",
		"--report", reportDir, "--boot-timeout", "15m", "--jobs", "2"}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "IMGCTL_AGENT="+agent)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("imgctl ci: %.1fs, %v\n%s", time.Since(start).Seconds(), err, stderr.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("imgctl ci exit: %v, want exit status 1", err)
	}

	var run struct {
		Recipes []struct {
			Name, Status, Reason string
			Target               bool
			Boot                 *struct {
				Status     string
				ConsoleLog string `json:"console_log"`
			}
			Tests []struct {
				Command  string
				Status   string
				ExitCode int `json:"exit_code"`
				Output   string
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		t.Fatalf("imgctl ci -o json: %v\n%s", err, stdout.String())
	}
	want := map[string]string{"tiny": "passed", "boot-tiny": "passed", "ci-good": "passed", "ci-badtest": "failed", "ci-broken": "failed", "ci-orphan": "skipped"}
	got := map[string]string{}
	for _, r := range run.Recipes {
		got[r.Name] = r.Status
		switch r.Name {
		case "ci-orphan":
			if !strings.Contains(r.Reason, "parent ci-broken") {
				t.Errorf("ci-orphan reason %q: want the failed parent named", r.Reason)
			}
		case "ci-good", "ci-badtest":
			if r.Boot == nil || r.Boot.Status != "passed" {
				t.Errorf("%s boot: %+v", r.Name, r.Boot)
			}
		}
		if r.Name == "ci-badtest" {
			if n := len(r.Tests); n != 2 || r.Tests[0].Status != "passed" || r.Tests[1].Status != "failed" || r.Tests[1].ExitCode != 1 ||
				!strings.Contains(r.Tests[1].Output, "looking for /etc/imgctl-ci-missing") {
				t.Errorf("ci-badtest tests: %+v", r.Tests)
			}
		}
	}
	for name, status := range want {
		if got[name] != status {
			t.Errorf("recipe %s: %q, want %q (all: %v)", name, got[name], status, got)
		}
	}

	checkJUnit(t, filepath.Join(reportDir, "junit.xml"))
	checkRegistry(t, ctx, reg)
	checkHTMLReport(t, filepath.Join(reportDir, "index.html"), want)
	for _, f := range []string{"history.json", "logs/ci-good/console.log", "logs/ci-good/serve.log", "logs/ci-broken/build.log"} {
		if _, err := os.Stat(filepath.Join(reportDir, f)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(reportDir, "logs/ci-good/console.log"))
		t.Logf("ci-good console (tail):\n%s", tailString(string(b), 3000))
	}
	t.Run("interrupt", func(t *testing.T) { ciInterrupt(t, ctx, bin, agent, args[:6], reg) })
}

// ciInterrupt starts `imgctl ci --publish` on ci-good (built and flattened
// by now) and sends SIGINT as soon as its QEMU runs: imgctl must end with
// exit 1 soon, leaving no namespace, no QEMU and no tag in the registry.
func ciInterrupt(t *testing.T, ctx context.Context, bin, agent string, global []string, reg string) {
	args := append(append([]string{}, global...), "ci", "--recipes", filepath.Join(repoRoot(), "test/fixtures/ci/ci-good.yaml"),
		"--publish", "--registry", reg+"/interrupted", "--tls-verify=false")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "IMGCTL_AGENT="+agent)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "  console  ") { // vmboot: QEMU runs and its console speaks
			break
		}
	}
	sent := time.Now()
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	err = cmd.Wait()
	t.Logf("interrupted imgctl ci ended %.1fs after SIGINT: %v\n%s", time.Since(sent).Seconds(), err, log.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", err)
	}
	prefix := fmt.Sprintf("imgvm%d", cmd.Process.Pid%100000)
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), prefix) {
		t.Errorf("namespace %s* left behind:\n%s", prefix, out)
	}
	console := filepath.Join(global[5], "vm", "ci-ci-good", "console.log")
	if out, _ := exec.Command("ps", "-eo", "pid,args").Output(); strings.Contains(string(out), console) {
		t.Errorf("a QEMU on %s is still running:\n%s", console, out)
	}
	if out, err := exec.CommandContext(ctx, "skopeo", "list-tags", "--tls-verify=false", "docker://"+reg+"/interrupted/ci-good").CombinedOutput(); err == nil {
		t.Errorf("the interrupted run published: %s", out)
	}
}

// checkJUnit parses the JUnit XML and checks each case's status.
func checkJUnit(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Text string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v", err)
	}
	status := map[string]string{} // suite/case → passed|failed|skipped
	failure := map[string]string{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			k, st := s.Name+"/"+c.Name, "passed"
			switch {
			case c.Failure != nil:
				st, failure[k] = "failed", c.Failure.Text
			case c.Skipped != nil:
				st = "skipped"
			}
			status[k] = st
		}
	}
	want := map[string]string{
		"ci-good/build": "passed", "ci-good/boot": "passed", "ci-good/test: sshd -t": "passed",
		"ci-good/test: systemctl is-active ssh": "passed", "ci-good/publish": "passed",
		"ci-badtest/build": "passed", "ci-badtest/boot": "passed", "ci-badtest/test: sshd -t": "passed",
		`ci-badtest/test: echo "looking for /etc/imgctl-ci-missing"; test -e /etc/imgctl-ci-missing`: "failed",
		"ci-broken/build": "failed", "ci-orphan/build": "skipped",
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("junit %s: %q, want %q", k, status[k], v)
		}
	}
	if _, ok := status["ci-badtest/publish"]; ok {
		t.Error("junit: ci-badtest has a publish case: a failed image was offered to the registry")
	}
	if f := failure["ci-broken/build"]; !strings.Contains(f, "ci-broken is about to fail") {
		t.Errorf("ci-broken build failure text lacks the command's last output: %q", f)
	}
	if f := failure[`ci-badtest/test: echo "looking for /etc/imgctl-ci-missing"; test -e /etc/imgctl-ci-missing`]; !strings.Contains(f, "looking for") {
		t.Errorf("ci-badtest failure text lacks the command's output: %q", f)
	}
}

// checkRegistry: ci-good is there with its publish: tags, nothing else is.
func checkRegistry(t *testing.T, ctx context.Context, reg string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "skopeo", "list-tags", "--tls-verify=false", "docker://"+reg+"/ci/ci-good").Output()
	if err != nil {
		t.Fatalf("skopeo list-tags ci-good: %v", err)
	}
	var tags struct{ Tags []string }
	if err := json.Unmarshal(out, &tags); err != nil {
		t.Fatalf("skopeo list-tags: %v: %s", err, out)
	}
	have := strings.Join(tags.Tags, " ")
	for _, want := range []string{"latest", time.Now().UTC().Format("20060102"), "key-"} {
		if !strings.Contains(have, want) {
			t.Errorf("ci-good tags %v: want one like %q", tags.Tags, want)
		}
	}
	for _, name := range []string{"ci-badtest", "ci-broken", "ci-orphan", "boot-tiny", "tiny"} {
		if out, err := exec.CommandContext(ctx, "skopeo", "list-tags", "--tls-verify=false", "docker://"+reg+"/ci/"+name).CombinedOutput(); err == nil {
			t.Errorf("%s is in the registry: %s", name, out)
		}
	}
}

// checkHTMLReport loads the page in headless Chromium and reads every
// recipe's status from the rendered DOM; the screenshot is kept.
func checkHTMLReport(t *testing.T, page string, want map[string]string) {
	t.Helper()
	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll("#recipes tr.recipe")].map(r => [r.querySelector("td a").textContent, r.querySelector("td.status").textContent]))`))
	if err != nil {
		t.Fatalf("read the report's DOM: %v", err)
	}
	for name, status := range want {
		if rows[name] != status {
			t.Errorf("rendered report: %s is %q, want %q (rows %v)", name, rows[name], status, rows)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(keptArtifactDir(t), "ci-report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report screenshot: %s (%d bytes)", shot, len(png))
}

// keptArtifactDir is where a test's artifacts outlive it: t.ArtifactDir()
// under `go test -artifacts`, else a directory under the shared test dir.
func keptArtifactDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(testenv.Dir, "artifacts", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
