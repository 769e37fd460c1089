package ui

import (
	"net/http"
	"sort"
	"time"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// Storm is the boot-storm view: how many nodes were in each phase over time
// (rebuilt from the phase timestamps of each node's boot under way, so it
// survives a restart of the service), time-to-booted percentiles and the
// slowest nodes.
type Storm struct {
	Start  time.Time                 `json:"start"`
	Step   float64                   `json:"step_s"`
	Points int                       `json:"points"`
	Series map[nodestate.State][]int `json:"series"` // per state, one count per point
	Booted int                       `json:"booted"` // nodes whose boot under way reached booted
	P50    float64                   `json:"p50_s"`  // time from the first phase to booted
	P95    float64                   `json:"p95_s"`
	Slow   []Slow                    `json:"slowest"`
	Counts map[nodestate.State]int   `json:"counts"` // nodes per state now
}

// Slow is one of the slowest nodes: booted ones by their time to booted,
// the others by how long their boot has been under way.
type Slow struct {
	Name    string  `json:"name"`
	State   string  `json:"state"`
	Seconds float64 `json:"seconds"`
	Reason  string  `json:"reason,omitempty"`
}

// stormWindow bounds how far back the chart reaches.
const stormWindow = 6 * time.Hour

type step struct {
	at    time.Time
	state nodestate.State
}

// timeline is a boot's phases in time order; InitrdDHCP, a part of the
// kernel phase, is left out.
func timeline(phases map[nodestate.State]time.Time) []step {
	var tl []step
	for st, at := range phases {
		if nodestate.Valid(st) {
			tl = append(tl, step{at, st})
		}
	}
	sort.Slice(tl, func(i, j int) bool { return tl[i].at.Before(tl[j].at) })
	return tl
}

// buildStorm computes the view over states at now with points samples.
func buildStorm(states []nodestate.Node, now time.Time, points int, slowest int) Storm {
	s := Storm{Points: points, Series: map[nodestate.State][]int{}, Counts: map[nodestate.State]int{}, Slow: []Slow{}}
	lines := make([][]step, 0, len(states))
	start := now
	var booted []float64
	for _, n := range states {
		s.Counts[n.State]++
		tl := timeline(n.Phases)
		if len(tl) == 0 {
			continue
		}
		lines = append(lines, tl)
		first := tl[0].at
		if first.Before(start) {
			start = first
		}
		sl := Slow{Name: n.Name, State: string(n.State), Reason: n.Reason}
		if at, ok := n.Phases[nodestate.Booted]; ok && n.State == nodestate.Booted {
			sl.Seconds = at.Sub(first).Seconds()
			booted = append(booted, sl.Seconds)
		} else if n.State == nodestate.Failed {
			sl.Seconds = n.Phases[nodestate.Failed].Sub(first).Seconds()
		} else {
			sl.Seconds = now.Sub(first).Seconds()
		}
		s.Slow = append(s.Slow, sl)
	}
	if start.Before(now.Add(-stormWindow)) {
		start = now.Add(-stormWindow)
	}
	if now.Sub(start) < 10*time.Second {
		start = now.Add(-10 * time.Second)
	}
	s.Start = start
	stepD := now.Sub(start) / time.Duration(max(points-1, 1))
	s.Step = stepD.Seconds()
	for _, st := range nodestate.States {
		s.Series[st] = make([]int, points)
	}
	for _, tl := range lines {
		j := 0
		for i := range points {
			t := start.Add(time.Duration(i) * stepD)
			for j < len(tl) && !tl[j].at.After(t) {
				j++
			}
			if j > 0 {
				s.Series[tl[j-1].state][i]++
			}
		}
	}
	sort.Float64s(booted)
	s.Booted = len(booted)
	s.P50, s.P95 = percentile(booted, 0.50), percentile(booted, 0.95)
	sort.SliceStable(s.Slow, func(i, j int) bool { return s.Slow[i].Seconds > s.Slow[j].Seconds })
	if len(s.Slow) > slowest {
		s.Slow = s.Slow[:slowest]
	}
	return s
}

// percentile of sorted values by the nearest rank; 0 when there are none.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (s *Server) storm(w http.ResponseWriter, r *http.Request) {
	states, err := s.deps.Store.States(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, buildStorm(states, s.now().UTC(), 120, 15))
}
