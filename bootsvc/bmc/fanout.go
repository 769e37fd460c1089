package bmc

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Result is one node's outcome of a fan-out.
type Result struct {
	Node    string  `json:"node" yaml:"node"`
	BMC     string  `json:"bmc" yaml:"bmc"`
	OK      bool    `json:"ok" yaml:"ok"`
	Output  string  `json:"output,omitempty" yaml:"output,omitempty"`
	Error   string  `json:"error,omitempty" yaml:"error,omitempty"`
	Seconds float64 `json:"seconds" yaml:"seconds"`
}

// Run performs a on every target, at most fanout at a time, each bounded by
// timeout. One node's failure never stops the others. Results are sorted by node.
func Run(ctx context.Context, targets []Target, a Action, fanout int, timeout time.Duration) []Result {
	if fanout < 1 {
		fanout = 1
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out, err := Do(nctx, t, a)
			r := Result{Node: t.Node, BMC: t.Address, OK: err == nil, Output: out, Seconds: time.Since(start).Seconds()}
			if err != nil {
				r.Error = err.Error()
				if isTimeout(err) || nctx.Err() != nil {
					r.Error = fmt.Sprintf("no answer within %s: %v", timeout, err)
				}
			}
			results[i] = r
		}()
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Node < results[j].Node })
	return results
}
