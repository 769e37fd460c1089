package builder_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/testenv"
)

// copyDir copies the child fixture to a temp dir whose parent path still
// reaches test/fixtures (the recipe names its parent relatively).
func childFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(buildtest.RepoRoot(), "builder", "testdata", t.Name())
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src := filepath.Join(buildtest.RepoRoot(), "builder", "testdata", "child")
	for _, f := range []string{"child.yaml", "files/hello.conf"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		// The copy sits one level deeper: fix the relative parent path.
		b = []byte(strings.ReplaceAll(string(b), "../../../test/", "../../../test/"))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "child.yaml")
}

func TestBuildChainCacheAndFailure(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mmdebstrap", "skopeo")
	st := buildtest.Store(t)
	agent := buildtest.Agent(t)
	testenv.Lock(t, "build")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	path := childFixture(t)
	load := func() *recipe.Recipe {
		r, err := recipe.Load(path, recipe.Vars{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	newBuilder := func(noCache bool) *builder.Builder {
		return builder.New(st, builder.Options{NoCache: noCache, Agent: func() (string, error) { return agent, nil }})
	}

	// First build: parent from the shared cache (or bootstrapped), child built.
	res, err := newBuilder(false).Build(ctx, load())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[1].Name != "imgctl-test-child" {
		t.Fatalf("results %+v, want tiny then the child", res)
	}
	child := res[1]
	src, err := builder.Source(ctx, st, child.ImageID, nil)
	if err != nil {
		t.Fatal(err)
	}
	labels := src.Labels()
	for k, want := range map[string]string{images.LabelRecipe: "imgctl-test-child", images.LabelCacheKey: child.CacheKey, images.LabelParent: "imgctl/tiny", "org.example.team": "hpc"} {
		if labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, labels[k], want)
		}
	}
	root, unmount, err := src.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(filepath.Join(root, "etc/imgctl-test/hello.conf"))
	stamp, _ := os.ReadFile(filepath.Join(root, "etc/imgctl-test/stamp"))
	unmount()
	if err != nil || st1.Mode().Perm() != 0o600 {
		t.Errorf("copied file: %v, mode %v, want 0600", err, st1)
	}
	if strings.TrimSpace(string(stamp)) != "built" {
		t.Errorf("run step output %q, want built", stamp)
	}

	// Second build: every layer cached, nothing runs, well under a second.
	start := time.Now()
	res2, err := newBuilder(false).Build(ctx, load())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cached build took %v, want < 1s", d)
	}
	for _, r := range res2 {
		if !r.Cached {
			t.Errorf("layer %s rebuilt on an unchanged chain", r.Name)
		}
	}

	// Touch only the child: the parent stays cached, the child is rebuilt.
	// A content no earlier run used, so the shared cache cannot hold it.
	os.WriteFile(filepath.Join(filepath.Dir(path), "files/hello.conf"), []byte(fmt.Sprintf("greeting = hi %d\n", time.Now().UnixNano())), 0o644)
	res3, err := newBuilder(false).Build(ctx, load())
	if err != nil {
		t.Fatal(err)
	}
	if !res3[0].Cached || res3[1].Cached || res3[1].ImageID == child.ImageID {
		t.Errorf("after changing the child's file: parent cached=%v, child cached=%v", res3[0].Cached, res3[1].Cached)
	}

	// Export to an OCI layout and inspect it with skopeo.
	out := t.TempDir()
	imgctl := buildImgctl(t)
	cmd := exec.CommandContext(ctx, imgctl, "--storage-root", testenv.Storage(t).GraphRoot, "--storage-runroot", testenv.Storage(t).RunRoot,
		"export", "imgctl/imgctl-test-child:latest", "--oci", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("imgctl export: %v\n%s", err, b)
	}
	b, err := exec.CommandContext(ctx, "skopeo", "inspect", "oci:"+out+":latest").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, b)
	}
	for _, want := range []string{`"org.imgctl.recipe": "imgctl-test-child"`, `"Layers": [`, `"org.example.team": "hpc"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("skopeo inspect lacks %s:\n%s", want, b)
		}
	}

	// A failing run command stops the build, names the command and its status,
	// and tags nothing for that recipe; the parent stays cached.
	bad := strings.Replace(string(mustRead(t, path)), `- echo "built" > /etc/imgctl-test/stamp`, "- echo about to fail; exit 3", 1)
	bad = strings.Replace(bad, "name: imgctl-test-child", "name: imgctl-test-broken", 1)
	badPath := filepath.Join(filepath.Dir(path), "broken.yaml")
	os.WriteFile(badPath, []byte(bad), 0o644)
	br, err := recipe.Load(badPath, recipe.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newBuilder(false).Build(ctx, br)
	var ce *builder.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("failing run: err %v, want a CommandError", err)
	}
	for _, want := range []string{"exit 3", "about to fail", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := builder.LookupImage(st, "imgctl/imgctl-test-broken"); err == nil {
		t.Error("a failed build left a tagged image")
	}
	if _, err := builder.LookupImage(st, "imgctl/tiny"); err != nil {
		t.Errorf("parent lost after a failed child build: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildImgctl builds the CLI for tests that exercise it as users do.
func buildImgctl(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "imgctl")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/imgctl")
	cmd.Dir = buildtest.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build imgctl: %v\n%s", err, b)
	}
	return out
}
