package bmc

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/logging"
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
// timeout. One node's failure never stops the others. Results are sorted by
// node. Each outcome is logged at debug level (log may be nil), never with a
// password.
func Run(ctx context.Context, log *slog.Logger, targets []Target, a Action, fanout int, timeout time.Duration) []Result {
	log = logging.OrDiscard(log)
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
			log.Debug("bmc", "node", r.Node, "bmc", r.BMC, "action", string(a), "user", t.User, "ok", r.OK, "output", r.Output, "error", r.Error, "seconds", r.Seconds)
			results[i] = r
		}()
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Node < results[j].Node })
	return results
}
