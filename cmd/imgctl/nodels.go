package main

import (
	"net"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
)

// nodeView is one row of `node ls` in its structured forms: the merged node
// (BMC password removed) and its boot state.
type nodeView struct {
	Name           string `json:"name" yaml:"name"`
	inventory.Node `yaml:",inline"`
	State          *nodestate.Summary `json:"state,omitempty" yaml:"state,omitempty"`
}

// nodeListing renders nodes for `node ls`: structured views and text rows.
// states may be nil (no boot service has run); digest gives an image's
// current digest for the staleness check ("" when unknown).
func nodeListing(nodes []inventory.Node, states map[string]nodestate.Node, digest func(image string) string, now time.Time) ([]nodeView, [][]string) {
	views := make([]nodeView, 0, len(nodes))
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		if n.BMC != nil {
			b := *n.BMC
			b.Password = ""
			n.BMC = &b
		}
		v := nodeView{Name: n.Name, Node: n}
		state, since, booted, phases, userspace, slowest := "-", "-", "-", "-", "-", "-"
		if st, ok := states[n.Name]; ok {
			s := nodestate.Summarize(st, digest(n.Image), now)
			v.State = &s
			state, since, phases = s.State, dash(s.Since), dash(s.Phases)
			userspace, slowest = dash(s.Userspace), dash(s.Slowest)
			if s.Digest != "" {
				booted = shortDigest(s.Digest)
				if s.Stale {
					booted += " (stale)"
				} else if digest(n.Image) != "" {
					booted += " (current)"
				}
			}
		}
		views = append(views, v)
		rows = append(rows, []string{n.Name, dash(strings.Join(n.MACs, ",")), dash(n.IP), dash(strings.Join(n.Groups, ",")),
			dash(n.Image), dash(string(n.Mode)), state, since, booted, phases, userspace, slowest})
	}
	return views, rows
}

func stateMap(list []nodestate.Node) map[string]nodestate.Node {
	m := make(map[string]nodestate.Node, len(list))
	for _, n := range list {
		m[n.Name] = n
	}
	return m
}

// currentDigests looks images' current digests up in the artifact store,
// once per image.
func currentDigests(stateDir string) func(string) string {
	store := images.NewStore(stateDir)
	cache := map[string]string{}
	return func(image string) string {
		if image == "" {
			return ""
		}
		if d, ok := cache[image]; ok {
			return d
		}
		d := ""
		if e, err := store.Current(image); err == nil && e.Manifest != nil {
			d = e.Manifest.ImageDigest
		}
		cache[image] = d
		return d
	}
}

func parseMAC(s string) (net.HardwareAddr, error) { return net.ParseMAC(s) }
