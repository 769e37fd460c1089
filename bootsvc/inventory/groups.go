package inventory

import (
	"errors"
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// Raw returns the named node as written in the file, without its groups'
// settings: the form to change and Put back.
func (inv *Inventory) Raw(name string) (Node, bool) {
	n, ok := inv.file.Nodes[name]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Group returns the named group.
func (inv *Inventory) Group(name string) (Group, bool) {
	g, ok := inv.file.Groups[name]
	if !ok {
		return Group{}, false
	}
	return *g, true
}

// NamedGroup is a group with its name, for listing.
type NamedGroup struct {
	Name  string   `json:"name" yaml:"name"`
	Nodes []string `json:"nodes,omitempty" yaml:"nodes,omitempty"` // members, sorted
	Group `yaml:",inline"`
}

// Groups returns every group with its members, sorted by name.
func (inv *Inventory) Groups() []NamedGroup {
	members := map[string][]string{}
	for _, name := range sortedKeys(inv.file.Nodes) {
		for _, g := range inv.file.Nodes[name].Groups {
			members[g] = append(members[g], name)
		}
	}
	out := make([]NamedGroup, 0, len(inv.file.Groups))
	for name, g := range inv.file.Groups {
		out = append(out, NamedGroup{Name: name, Nodes: members[name], Group: *g})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutGroup adds or replaces a group and revalidates.
func (inv *Inventory) PutGroup(name string, g Group) error {
	if name == "" {
		return errors.New("put group: empty name")
	}
	if inv.file.Groups == nil {
		inv.file.Groups = map[string]*Group{}
	}
	old, had := inv.file.Groups[name]
	inv.file.Groups[name] = &g
	if err := inv.validate(); err != nil {
		if had {
			inv.file.Groups[name] = old
		} else {
			delete(inv.file.Groups, name)
		}
		inv.validate()
		return fmt.Errorf("put group %s: %w", name, err)
	}
	return nil
}

// RemoveGroup deletes a group no node uses; a group in use is an error
// naming its members.
func (inv *Inventory) RemoveGroup(name string) error {
	if _, ok := inv.file.Groups[name]; !ok {
		return fmt.Errorf("remove group %s: no such group", name)
	}
	for _, g := range inv.Groups() {
		if g.Name == name && len(g.Nodes) > 0 {
			return fmt.Errorf("remove group %s: still used by %d nodes (%s)", name, len(g.Nodes), g.Nodes[0])
		}
	}
	delete(inv.file.Groups, name)
	return nil
}

// Len is the number of nodes.
func (inv *Inventory) Len() int { return len(inv.file.Nodes) }

// File returns a deep copy of the inventory in its on-disk form, for export.
func (inv *Inventory) File() File {
	data, err := yaml.Marshal(&inv.file)
	if err != nil {
		return File{} // cannot happen: the same value was decoded from or validated as YAML
	}
	var f File
	_ = yaml.Unmarshal(data, &f)
	return f
}

// FromFile validates f and returns it as an inventory (the import side of File).
func FromFile(f File) (*Inventory, error) {
	data, err := yaml.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse("inventory", data)
}
