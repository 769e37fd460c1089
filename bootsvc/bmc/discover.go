package bmc

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Discovery is one BMC's outcome of DiscoverAll.
type Discovery struct {
	BMC     string   `json:"bmc" yaml:"bmc"`
	Systems []System `json:"systems,omitempty" yaml:"systems,omitempty"`
	Error   string   `json:"error,omitempty" yaml:"error,omitempty"`
}

// DiscoverAll reads systems and MACs from every Redfish BMC, at most fanout at
// a time, each bounded by timeout. One BMC's failure never stops the others.
// Results keep the order of targets (the order of the BMC range).
func DiscoverAll(ctx context.Context, targets []Target, fanout int, timeout time.Duration) []Discovery {
	if fanout < 1 {
		fanout = 1
	}
	out := make([]Discovery, len(targets))
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			systems, err := Discover(nctx, t)
			d := Discovery{BMC: t.Address, Systems: systems}
			if err != nil {
				d.Error = scrub(err.Error(), t.Password)
				if isTimeout(err) || nctx.Err() != nil {
					d.Error = fmt.Sprintf("no answer within %s: %s", timeout, d.Error)
				}
			}
			out[i] = d
		}()
	}
	wg.Wait()
	for _, d := range out {
		sort.Slice(d.Systems, func(i, j int) bool { return d.Systems[i].ID < d.Systems[j].ID })
	}
	return out
}
