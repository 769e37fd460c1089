package ci

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imgctl/imgctl/builder/recipe"
)

// node is one recipe of the run's DAG.
type node struct {
	path   string         // absolute recipe file
	r      *recipe.Recipe // nil when it did not load
	err    error          // why it did not load
	parent *node          // nil for scratch and image-reference parents
	target bool           // named by the run (not only an ancestor of one)
	depth  int
}

// RecipeFiles expands the run's recipe arguments: a directory stands for
// its *.yaml and *.yml files (not recursive), a file for itself. The result
// is sorted and free of duplicates.
func RecipeFiles(args []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if !seen[abs] {
			seen[abs] = true
			out = append(out, abs)
		}
		return nil
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("recipes %s: %w", a, err)
		}
		if !st.IsDir() {
			if err := add(a); err != nil {
				return nil, err
			}
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("recipes %s: %w", a, err)
		}
		n := 0
		for _, e := range ents {
			if e.Type().IsRegular() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				if err := add(filepath.Join(a, e.Name())); err != nil {
					return nil, err
				}
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("recipes %s: no *.yaml files in the directory", a)
		}
	}
	sort.Strings(out)
	return out, nil
}

// plan loads every file with its parent chain and returns the DAG's nodes
// in build order (parents before children, then by name). A file that does
// not load is a node with err set; the others go on.
func plan(files []string, vars recipe.Vars) []*node {
	nodes := map[string]*node{}
	var visit func(r *recipe.Recipe) *node
	visit = func(r *recipe.Recipe) *node {
		if n, ok := nodes[r.Path]; ok {
			return n
		}
		n := &node{path: r.Path, r: r}
		nodes[r.Path] = n
		if r.ParentRecipe != nil {
			n.parent = visit(r.ParentRecipe)
			n.depth = n.parent.depth + 1
		}
		return n
	}
	for _, f := range files {
		r, err := recipe.Load(f, vars)
		if err != nil {
			if _, ok := nodes[f]; !ok {
				nodes[f] = &node{path: f, err: err}
			}
			nodes[f].target = true
			continue
		}
		visit(r).target = true
	}
	out := make([]*node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n)
	}
	// Two files of one name would build into the same image tags.
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	byName := map[string]string{}
	for _, n := range out {
		if n.r == nil {
			continue
		}
		if other, ok := byName[n.r.Name]; ok {
			n.err = fmt.Errorf("%s: name %s is also the name of %s (images are tagged by name)", n.path, n.r.Name, other)
			n.r = nil
			continue
		}
		byName[n.r.Name] = n.path
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].depth != out[j].depth {
			return out[i].depth < out[j].depth
		}
		return out[i].name() < out[j].name()
	})
	return out
}

// name is the recipe's name, or its file's base name when it did not load.
func (n *node) name() string {
	if n.r != nil {
		return n.r.Name
	}
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(n.path), ".yaml"), ".yml")
}
