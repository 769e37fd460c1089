package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Vars are the values ${VAR} expands to: --set values over the environment.
type Vars struct {
	Set    map[string]string           // from --set K=V; wins
	Lookup func(string) (string, bool) // usually os.LookupEnv; nil = none
}

func (v Vars) get(name string) (string, bool) {
	if s, ok := v.Set[name]; ok {
		return s, true
	}
	if v.Lookup != nil {
		return v.Lookup(name)
	}
	return "", false
}

// Load reads the recipe at path and, recursively, every parent recipe file,
// expanding variables. Cycles of parents are errors naming the chain.
func Load(path string, vars Vars) (*Recipe, error) {
	return load(path, vars, nil)
}

func load(path string, vars Vars, stack []string) (*Recipe, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	for _, p := range stack {
		if p == abs {
			return nil, fmt.Errorf("%s: parent cycle: %s", abs, strings.Join(append(stack, abs), " → "))
		}
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && len(stack) > 0 {
			return nil, fmt.Errorf("%s: parent recipe %s does not exist", stack[len(stack)-1], abs)
		}
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	r, err := Parse(abs, data, vars)
	if err != nil {
		return nil, err
	}
	if r.ParentIsRecipe() {
		pp := r.Parent
		if !filepath.IsAbs(pp) {
			pp = filepath.Join(r.Dir(), pp)
		}
		if _, err := os.Stat(pp); err != nil {
			return nil, r.errorf("parent", "parent recipe %s: %v", r.Parent, errors.Unwrap(err))
		}
		parent, err := load(pp, vars, append(stack, abs))
		if err != nil {
			return nil, err
		}
		r.ParentRecipe = parent
	}
	// Checks that depend on what the parent chain gives.
	if len(r.PackageGroups) > 0 && r.EffectivePackageManager() == Apt {
		return nil, r.errorf("package_groups", "package_groups need dnf or zypper; apt has no groups")
	}
	return r, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse decodes one recipe file's content. path names it in errors.
func Parse(path string, data []byte, vars Vars) (*Recipe, error) {
	// Pass 1: strict decoding of the text as written, so unknown fields and
	// type errors carry the line they are on.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	var probe Recipe
	if err := strict.Decode(&probe); err != nil {
		return nil, yamlError(path, err)
	}
	// Pass 2: expand ${VAR} in every scalar (comments are not expanded), then decode.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(path, err)
	}
	r := &Recipe{Path: path, lines: map[string]int{}}
	if err := expand(&doc, "", r.lines, path, vars); err != nil {
		return nil, err
	}
	if err := doc.Decode(r); err != nil {
		return nil, yamlError(path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// yamlError turns yaml.v3's "line N: msg" errors into "file:N: msg".
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, e := range te.Errors {
			errs = append(errs, lineError(path, e))
		}
		return errors.Join(errs...)
	}
	return lineError(path, strings.TrimPrefix(err.Error(), "yaml: "))
}

func lineError(path, msg string) error {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		text := m[2]
		if f, ok := strings.CutPrefix(text, "field "); ok {
			if name, _, ok := strings.Cut(f, " not found in type"); ok {
				text = "unknown field " + strconv.Quote(name)
			}
		}
		return &Error{File: path, Line: n, Msg: text}
	}
	if msg == "EOF" {
		return &Error{File: path, Msg: "empty recipe"}
	}
	return &Error{File: path, Msg: msg}
}

var varRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expand replaces ${VAR} and ${VAR:-default} in scalar nodes ("$$" is a
// literal "$") and records
// the line of every field path.
func expand(n *yaml.Node, path string, lines map[string]int, file string, vars Vars) error {
	lines[path] = n.Line
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expand(c, path, lines, file, vars); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			lines[p] = n.Content[i].Line
			if err := expand(n.Content[i+1], p, lines, file, vars); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expand(c, fmt.Sprintf("%s[%d]", path, i), lines, file, vars); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing string
		n.Value = varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := varRE.FindStringSubmatch(m)
			name, def := sub[1], sub[2]
			v, ok := vars.get(name)
			if !ok && def != "" {
				return def[2:] // ${VAR:-default}
			}
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("variable %s is not set (set it in the environment or with --set %s=…)", missing, missing)}
		}
	}
	return nil
}
