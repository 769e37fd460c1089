package recipe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFiles creates files (name → content) in a temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const scratchBase = "name: base\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		load  string
		want  []string // substrings the error must contain
	}{
		{"unknown field", map[string]string{"r.yaml": "name: r\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\npackges: [vim]\n"},
			"r.yaml", []string{"r.yaml:4:", `unknown field "packges"`}},
		{"bad yaml", map[string]string{"r.yaml": "name: r\nparent: [scratch\n"},
			"r.yaml", []string{"r.yaml:", "did not find expected"}},
		{"missing parent file", map[string]string{"r.yaml": "name: r\nparent: nope.yaml\n"},
			"r.yaml", []string{"r.yaml:2:", "nope.yaml"}},
		{"parent cycle", map[string]string{"a.yaml": "name: a\nparent: b.yaml\n", "b.yaml": "name: b\nparent: a.yaml\n"},
			"a.yaml", []string{"parent cycle", "a.yaml → ", "b.yaml → "}},
		{"unset variable", map[string]string{"r.yaml": scratchBase + "packages:\n  - vim\n  - ${IMGCTL_TEST_UNSET_VAR}\n"},
			"r.yaml", []string{"r.yaml:6:", "IMGCTL_TEST_UNSET_VAR is not set"}},
		{"missing files source", map[string]string{"r.yaml": scratchBase + "files:\n  - {src: files/missing.conf, dest: /etc/x}\n"},
			"r.yaml", []string{"r.yaml:5:", "files/missing.conf does not exist"}},
		{"relative dest", map[string]string{"r.yaml": scratchBase + "files:\n  - {src: r.yaml, dest: etc/x}\n", "x": ""},
			"r.yaml", []string{"must be an absolute path"}},
		{"bad mode", map[string]string{"r.yaml": scratchBase + "files:\n  - {src: r.yaml, dest: /etc/x, mode: \"0999\"}\n"},
			"r.yaml", []string{"not an octal file mode"}},
		{"scratch without bootstrap", map[string]string{"r.yaml": "name: r\nparent: scratch\n"},
			"r.yaml", []string{"no bootstrap section"}},
		{"groups with apt", map[string]string{"base.yaml": scratchBase, "r.yaml": "name: r\nparent: base.yaml\npackage_groups: [dev]\n"},
			"r.yaml", []string{"r.yaml:3:", "package_groups need dnf"}},
		{"wrong type", map[string]string{"r.yaml": scratchBase + "packages: {a: b}\n"},
			"r.yaml", []string{"r.yaml:4:"}},
		{"bad name", map[string]string{"r.yaml": "name: Bad Name\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\n"},
			"r.yaml", []string{"r.yaml:1:", "lower-case"}},
		{"empty", map[string]string{"r.yaml": ""}, "r.yaml", []string{"empty recipe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := Load(filepath.Join(dir, tt.load), Vars{})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadChainAndVars(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml":  scratchBase + "boot: {cmdline: \"console=ttyS0\"}\n",
		"child.yaml": "name: child\nparent: base.yaml\npackages: [\"${PKG}\", \"${MISSING:-fallback}\"]\nrun: [\"echo $$HOME\"]\n# ${NOT_EXPANDED_IN_COMMENTS}\n",
	})
	r, err := Load(filepath.Join(dir, "child.yaml"), Vars{Set: map[string]string{"PKG": "vim"}, Lookup: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"vim", "fallback"}, r.Packages); d != "" {
		t.Errorf("packages (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"echo $HOME"}, r.Run); d != "" {
		t.Errorf("run (-want +got):\n%s", d)
	}
	if r.ParentRecipe == nil || r.ParentRecipe.Name != "base" {
		t.Fatalf("parent not loaded: %+v", r.ParentRecipe)
	}
	if b := r.EffectiveBoot(); b == nil || b.Cmdline != "console=ttyS0" {
		t.Errorf("boot not inherited: %+v", b)
	}
	if pm := r.EffectivePackageManager(); pm != Apt {
		t.Errorf("package manager %q, want apt", pm)
	}
}

func TestCacheKey(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"r.yaml":     scratchBase + "files:\n  - {src: files/, dest: /etc/x/}\n",
		"files/a.cf": "one",
	})
	load := func() *Recipe {
		r, err := Load(filepath.Join(dir, "r.yaml"), Vars{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	key := func(parent string, extra map[string][]byte) string {
		k, err := load().CacheKey(parent, extra)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key("p1", nil)
	if k1 != key("p1", nil) {
		t.Fatal("cache key is not stable")
	}
	tests := []struct {
		name   string
		change func()
		parent string
		extra  map[string][]byte
	}{
		{"parent image", func() {}, "p2", nil},
		{"extra input", func() {}, "p1", map[string][]byte{"agent": []byte("x")}},
		{"copied file content", func() { os.WriteFile(filepath.Join(dir, "files/a.cf"), []byte("two"), 0o644) }, "p1", nil},
		{"recipe", func() {
			os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(scratchBase+"packages: [vim]\nfiles:\n  - {src: files/, dest: /etc/x/}\n"), 0o644)
		}, "p1", nil},
	}
	prev := k1
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			k := key(tt.parent, tt.extra)
			if k == prev || k == k1 {
				t.Errorf("key did not change after changing the %s", tt.name)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{scratchBase, "name: x\nparent: y.yaml\nfiles: [{src: a, dest: /b}]\n", "a: [", "${X}", "name: ${A:-b}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.yaml", data, Vars{Set: map[string]string{"A": "a"}})
		if err == nil && r.Name == "" {
			t.Fatal("parsed a recipe without a name")
		}
	})
}
