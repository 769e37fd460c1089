package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// listKeys are cloud-config keys whose value must be a list: a scalar there
// is a common slip that cloud-init reports only on the node, at boot.
var listKeys = map[string]bool{
	"runcmd": true, "bootcmd": true, "packages": true, "write_files": true,
	"ssh_authorized_keys": true, "mounts": true,
}

// parse reads one part: nil for an empty or opaque body, else its mapping.
// Errors name the file, the line and, where there is one, the key.
func parse(file, text string) (map[string]any, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	cloudConfig := file == UserData || file == VendorData
	if cloudConfig {
		if opaque(text) {
			return nil, nil
		}
		first, _, _ := strings.Cut(strings.TrimLeft(text, "\n"), "\n")
		if strings.TrimSpace(first) != headerCloudConfig {
			return nil, fmt.Errorf("%s: line 1: want #cloud-config (or ## template: jinja, #!, #include, a MIME body); cloud-init would ignore this body", file)
		}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil // comments only
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: want a mapping of keys, got %s", file, root.Line, kindName(root))
	}
	if cloudConfig {
		if err := checkCloudConfig(file, root); err != nil {
			return nil, err
		}
	}
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return m, nil
}

// checkCloudConfig checks the shapes cloud-init's own schema would refuse
// at boot: list keys that are not lists, write_files entries without path.
func checkCloudConfig(file string, root *yaml.Node) error {
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if listKeys[k.Value] && v.Kind != yaml.SequenceNode && v.Tag != "!!null" {
			errs = append(errs, fmt.Errorf("%s: line %d: key %s: want a list, got %s", file, v.Line, k.Value, kindName(v)))
			continue
		}
		if k.Value != "write_files" || v.Kind != yaml.SequenceNode {
			continue
		}
		for j, e := range v.Content {
			if e.Kind != yaml.MappingNode {
				errs = append(errs, fmt.Errorf("%s: line %d: key write_files[%d]: want a mapping with path and content", file, e.Line, j))
				continue
			}
			if !hasKey(e, "path") {
				errs = append(errs, fmt.Errorf("%s: line %d: key write_files[%d]: no path", file, e.Line, j))
			}
		}
	}
	return errors.Join(errs...)
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "something else"
}
