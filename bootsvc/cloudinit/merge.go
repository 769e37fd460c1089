package cloudinit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Layer is one record in a node's merge order, named for messages.
type Layer struct {
	Source string // e.g. "group compute", "node nid001 (secure)"
	Data   Data
}

// Facts are the values meta-data carries unless a layer sets them.
type Facts struct {
	InstanceID  string
	Hostname    string
	ClusterName string
}

// Files are the rendered NoCloud files by name; meta-data, user-data and
// vendor-data are always there, network-config only when a layer sets it.
type Files map[string][]byte

// Render merges layers (lowest first) into the NoCloud files. Each layer
// merges onto those below it as its Merge mode says. A user-data or
// vendor-data body cloud-init reads itself (## template: jinja, a script,
// #include, MIME) passes through untouched when it is that file's only
// body; merging it with others would mean guessing, so that is an error
// naming the layers.
func Render(layers []Layer, f Facts) (Files, error) {
	out := Files{}
	for _, file := range fileNames {
		b, ok, err := renderFile(file, layers, f)
		if err != nil {
			return nil, err
		}
		if ok {
			out[file] = b
		}
	}
	return out, nil
}

func renderFile(file string, layers []Layer, f Facts) ([]byte, bool, error) {
	var merged map[string]any
	var opaqueFrom string
	var sources []string
	for _, l := range layers {
		text := l.Data.text(file)
		if strings.TrimSpace(text) == "" {
			continue
		}
		sources = append(sources, l.Source)
		m, err := parse(file, text)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", l.Source, err)
		}
		if m == nil && (file == UserData || file == VendorData) && opaque(text) {
			opaqueFrom = l.Source
			continue
		}
		merged = mergeMaps(merged, m, l.Data.Merge)
	}
	if opaqueFrom != "" {
		if len(sources) > 1 {
			return nil, false, fmt.Errorf("%s: the body of %s is not #cloud-config (a jinja template, script, #include or MIME) and cannot be merged with %s",
				file, opaqueFrom, strings.Join(others(sources, opaqueFrom), ", "))
		}
		for _, l := range layers {
			if l.Source == opaqueFrom {
				return []byte(l.Data.text(file)), true, nil
			}
		}
	}
	switch file {
	case MetaData:
		if merged == nil {
			merged = map[string]any{}
		}
		setDefault(merged, "instance-id", f.InstanceID)
		setDefault(merged, "local-hostname", f.Hostname)
		setDefault(merged, "cluster-name", f.ClusterName)
		b, err := marshal(merged)
		return b, true, err
	case NetworkConfig:
		if len(sources) == 0 {
			return nil, false, nil
		}
		b, err := marshal(merged)
		return b, true, err
	}
	if merged == nil {
		merged = map[string]any{}
	}
	b, err := marshal(merged)
	return append([]byte(headerCloudConfig+"\n"), b...), true, err
}

func others(all []string, but string) []string {
	var out []string
	for _, s := range all {
		if s != but {
			out = append(out, s)
		}
	}
	return out
}

func setDefault(m map[string]any, key, v string) {
	if _, ok := m[key]; !ok && v != "" {
		m[key] = v
	}
}

// mergeMaps merges src onto dst (dst may be nil) and returns the result;
// neither input is changed.
func mergeMaps(dst, src map[string]any, mode MergeMode) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if mode == Deep {
			out[k] = deepMerge(out[k], v)
		} else {
			out[k] = v
		}
	}
	return out
}

// deepMerge: mappings merge key by key, lists append, anything else is
// replaced.
func deepMerge(dst, src any) any {
	switch s := src.(type) {
	case map[string]any:
		if d, ok := dst.(map[string]any); ok {
			return mergeMaps(d, s, Deep)
		}
	case []any:
		if d, ok := dst.([]any); ok {
			return append(append([]any{}, d...), s...)
		}
	}
	return src
}

func marshal(m map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return buf.Bytes(), nil
}

// NewInstanceID returns a fresh random instance-id, as the stores mint
// one per node and image.
func NewInstanceID() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (Go 1.24+: it crashes the program instead)
	return "i-" + hex.EncodeToString(b)
}
