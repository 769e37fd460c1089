package cloudinit

import (
	"context"
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// Getter reads stored records; a store.Store satisfies it. A record that is
// not there is the zero Data, not an error.
type Getter interface {
	CloudInit(ctx context.Context, k Key) (Data, error)
}

// Source is a Getter that also keeps each node's instance-id; a
// store.Store satisfies it.
type Source interface {
	Getter
	// InstanceID returns node's instance-id for image: the stored one while
	// the image is the same, a new one (stored) when it changed.
	InstanceID(ctx context.Context, node, image string) (string, error)
}

// NodeLayers returns node's records in merge order: each of its groups in
// the node's order, then the node; each public part followed by its secure
// part when secure is set.
func NodeLayers(ctx context.Context, g Getter, n inventory.Node, secure bool) ([]Layer, error) {
	var keys []Key
	for _, grp := range n.Groups {
		keys = append(keys, parts(Group, grp, secure)...)
	}
	keys = append(keys, parts(Node, n.Name, secure)...)
	layers, err := load(ctx, g, keys)
	if err != nil {
		return nil, fmt.Errorf("cloud-init of node %s: %w", n.Name, err)
	}
	return layers, nil
}

// parts are the keys of one group's or node's public and (if secure) secure part.
func parts(scope Scope, name string, secure bool) []Key {
	keys := []Key{{Scope: scope, Name: name}}
	if secure {
		keys = append(keys, Key{Scope: scope, Name: name, Secure: true})
	}
	return keys
}

// load reads keys' records, leaving out those not stored.
func load(ctx context.Context, g Getter, keys []Key) ([]Layer, error) {
	var out []Layer
	for _, k := range keys {
		d, err := g.CloudInit(ctx, k)
		if err != nil {
			return nil, err
		}
		if !d.IsZero() {
			out = append(out, Layer{Source: k.String(), Data: d})
		}
	}
	return out, nil
}

// Seeded reports whether node boots with the cloud-init seed: it has a
// record of its own (public or secure) that is not disabled, or, without
// one, one of its groups has such a record.
func Seeded(ctx context.Context, g Getter, n inventory.Node) (bool, error) {
	decide := func(scope Scope, name string) (set, on bool, err error) {
		for _, secure := range []bool{false, true} {
			d, err := g.CloudInit(ctx, Key{Scope: scope, Name: name, Secure: secure})
			if err != nil {
				return false, false, err
			}
			if !d.IsZero() {
				set = true
				if d.Disabled {
					return true, false, nil
				}
				on = true
			}
		}
		return set, on, nil
	}
	if set, on, err := decide(Node, n.Name); err != nil || set {
		return on, err
	}
	for _, grp := range n.Groups {
		if _, on, err := decide(Group, grp); err != nil || on {
			return on, err
		}
	}
	return false, nil
}

// Target is what a render is for: a node (with the image it boots, for the
// instance-id) or a group alone (a preview).
type Target struct {
	Node        *inventory.Node // nil: Group
	Group       string
	Image       string // the node's image digest (or name when unknown)
	ClusterName string
	Secure      bool // include the secure parts
}

// ForTarget renders the files t gets. Only a node render mints its
// instance-id; a group preview shows none.
func ForTarget(ctx context.Context, src Source, t Target) (Files, error) {
	if t.Node == nil {
		layers, err := load(ctx, src, parts(Group, t.Group, t.Secure))
		if err != nil {
			return nil, fmt.Errorf("cloud-init of group %s: %w", t.Group, err)
		}
		return Render(layers, Facts{ClusterName: t.ClusterName})
	}
	layers, err := NodeLayers(ctx, src, *t.Node, t.Secure)
	if err != nil {
		return nil, err
	}
	id, err := src.InstanceID(ctx, t.Node.Name, t.Image)
	if err != nil {
		return nil, fmt.Errorf("instance-id of node %s: %w", t.Node.Name, err)
	}
	return Render(layers, Facts{InstanceID: id, Hostname: t.Node.Name, ClusterName: t.ClusterName})
}
