package ci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/builder/recipe"
)

func writeRecipes(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlan(t *testing.T) {
	dir := writeRecipes(t, map[string]string{
		"base.yaml":   "name: base\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\n",
		"mid.yaml":    "name: mid\nparent: base.yaml\n",
		"leaf-a.yaml": "name: leaf-a\nparent: mid.yaml\ntest: [\"true\"]\n",
		"leaf-b.yaml": "name: leaf-b\nparent: mid.yaml\n",
		"bad.yaml":    "name: bad\nparent: base.yaml\nno_such_field: 1\n",
		"notes.txt":   "not a recipe",
	})
	tests := []struct {
		name        string
		args        []string
		wantOrder   []string
		wantTargets []string
		wantErr     []string // names whose node has a load error
	}{
		{
			name:        "directory",
			args:        []string{dir},
			wantOrder:   []string{"bad", "base", "mid", "leaf-a", "leaf-b"},
			wantTargets: []string{"bad", "base", "mid", "leaf-a", "leaf-b"},
			wantErr:     []string{"bad"},
		},
		{
			name:        "one leaf brings its ancestors, not as targets",
			args:        []string{filepath.Join(dir, "leaf-a.yaml")},
			wantOrder:   []string{"base", "mid", "leaf-a"},
			wantTargets: []string{"leaf-a"},
		},
		{
			name:        "shared parent once",
			args:        []string{filepath.Join(dir, "leaf-a.yaml"), filepath.Join(dir, "leaf-b.yaml"), filepath.Join(dir, "leaf-a.yaml")},
			wantOrder:   []string{"base", "mid", "leaf-a", "leaf-b"},
			wantTargets: []string{"leaf-a", "leaf-b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := RecipeFiles(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			nodes := plan(files, recipe.Vars{})
			var order, targets, errs []string
			for _, n := range nodes {
				order = append(order, n.name())
				if n.target {
					targets = append(targets, n.name())
				}
				if n.err != nil {
					errs = append(errs, n.name())
				}
				if n.parent != nil && n.r.ParentRecipe.Path != n.parent.path {
					t.Errorf("%s: parent node %s, recipe's parent %s", n.name(), n.parent.path, n.r.ParentRecipe.Path)
				}
			}
			if d := cmp.Diff(tt.wantOrder, order); d != "" {
				t.Errorf("order (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantTargets, targets); d != "" {
				t.Errorf("targets (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantErr, errs); d != "" {
				t.Errorf("load errors (-want +got):\n%s", d)
			}
		})
	}
	// Parents are the same node for every child: built once.
	files, _ := RecipeFiles([]string{dir})
	nodes := plan(files, recipe.Vars{})
	parents := map[string]*node{}
	for _, n := range nodes {
		if n.parent != nil && n.parent.name() == "mid" {
			parents[n.name()] = n.parent
		}
	}
	if parents["leaf-a"] == nil || parents["leaf-a"] != parents["leaf-b"] {
		t.Errorf("leaf-a and leaf-b do not share one parent node: %v", parents)
	}
}

func TestPlanDuplicateName(t *testing.T) {
	dir := writeRecipes(t, map[string]string{
		"a.yaml": "name: same\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\n",
		"b.yaml": "name: same\nparent: scratch\nbootstrap: {distro: debian, suite: bookworm}\n",
	})
	files, _ := RecipeFiles([]string{dir})
	nodes := plan(files, recipe.Vars{})
	errs := map[string]error{}
	for _, n := range nodes {
		errs[filepath.Base(n.path)] = n.err
	}
	if len(nodes) != 2 || errs["a.yaml"] != nil || errs["b.yaml"] == nil || !strings.Contains(errs["b.yaml"].Error(), "also the name of "+filepath.Join(dir, "a.yaml")) {
		t.Errorf("load errors %v: want b.yaml refused, naming a.yaml", errs)
	}
}

func TestRecipeFilesErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tt := range []struct{ name, arg, want string }{
		{"missing", filepath.Join(empty, "nope.yaml"), "no such file"},
		{"empty dir", empty, "no *.yaml files"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RecipeFiles([]string{tt.arg}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
