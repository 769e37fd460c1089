package test

import (
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestTreeFaults runs small tree storms in the benchmark's harness (real
// `imgctl serve`, real agents in namespaces, tbf links) and breaks them
// mid-transfer: a node that serves a child is killed, or its link drops to
// 1 kbit/s. Every surviving node must still end with a verified copy,
// fetching each piece once, and a stalled source's child must move within a
// bounded time.
func TestTreeFaults(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "tc", "curl", "mount")
	bin := imgctl(t)
	agent := buildAgent(t)
	const stall = 3
	// parentAndChild waits until some node serving a child holds a few
	// pieces, and returns both.
	parentAndChild := func(s *storm) (parent, child string) {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			st, err := distStatus(s.ctx, s.srv, s.bin, s.base)
			if err != nil || len(st) == 0 {
				continue
			}
			held := map[string]dist.NodeStatus{}
			for _, n := range st[0].Nodes {
				held[n.Node] = n
			}
			for _, m := range st[0].Nodes {
				if p, ok := held[m.Source]; ok && !m.Done && !p.Done && p.Held >= 3 {
					return p.Node, m.Node
				}
			}
		}
		t.Fatal("no node serving a child mid-transfer")
		return "", ""
	}
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, s *storm) (parent, child string)
	}{
		{"kill a parent", func(t *testing.T, s *storm) (string, string) {
			p, c := parentAndChild(s)
			s.kill(p)
			t.Logf("killed %s (serving %s)", p, c)
			return p, c
		}},
		{"stall a parent's link", func(t *testing.T, s *storm) (string, string) {
			p, c := parentAndChild(s)
			s.stallLink(p)
			start := time.Now()
			if _, ok := s.node(c, func(ns dist.NodeStatus) bool { return ns.Source != p }); !ok {
				t.Fatalf("%s never left its stalled source %s", c, p)
			}
			// Stall detection takes a stall period or two; the coordinator's
			// answer is immediate.
			if d := time.Since(start); d > 3*stall*time.Second+5*time.Second {
				t.Errorf("%s moved off its stalled source after %s (stall period %ds)", c, d, stall)
			}
			t.Logf("stalled %s; %s moved after %.1fs", p, c, time.Since(start).Seconds())
			s.restoreLink(p)
			return p, c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parent, child string
			c := distCase{mode: "tree", n: 5, mbit: 40, mib: 48, fanout: 1, stall: stall,
				fault: func(s *storm) { parent, child = tc.fault(t, s) }}
			r := runDist(t, bin, agent, c, 0)
			t.Logf("T_last %.1fs (S/B %.1fs), R %.2f", r.TLast, r.Floor, r.R)
			pieces := r.Status[0].Pieces
			for _, n := range r.Status[0].Nodes {
				if n.Node == parent && tc.name == "kill a parent" {
					continue
				}
				if !n.Done || total(n.From) != pieces {
					t.Errorf("%s: done %v, received %v: want all %d pieces, each once", n.Node, n.Done, n.From, pieces)
				}
				if n.Node == child && n.From[parent] == total(n.From) {
					t.Errorf("%s took every piece from %s, which failed", child, parent)
				}
			}
		})
	}
}
