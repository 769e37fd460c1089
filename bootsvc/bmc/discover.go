package bmc

import (
	"context"
	"sort"
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
	out := make([]Discovery, len(targets))
	forEach(ctx, len(targets), fanout, timeout, func(nctx context.Context, i int) {
		t := targets[i]
		systems, err := Discover(nctx, t)
		d := Discovery{BMC: t.Address, Systems: systems}
		if err != nil {
			d.Error = timeoutError(nctx, err, scrub(err.Error(), t.Password), timeout)
		}
		out[i] = d
	})
	for _, d := range out {
		sort.Slice(d.Systems, func(i, j int) bool { return d.Systems[i].ID < d.Systems[j].ID })
	}
	return out
}
