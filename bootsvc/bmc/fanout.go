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
	results := make([]Result, len(targets))
	forEach(ctx, len(targets), fanout, timeout, func(nctx context.Context, i int) {
		t := targets[i]
		start := time.Now()
		out, err := Do(nctx, t, a)
		r := Result{Node: t.Node, BMC: t.Address, OK: err == nil, Output: out, Seconds: time.Since(start).Seconds()}
		if err != nil {
			r.Error = timeoutError(nctx, err, err.Error(), timeout)
		}
		log.Debug("bmc", "node", r.Node, "bmc", r.BMC, "action", string(a), "user", t.User, "ok", r.OK, "output", r.Output, "error", r.Error, "seconds", r.Seconds)
		results[i] = r
	})
	sort.Slice(results, func(i, j int) bool { return results[i].Node < results[j].Node })
	return results
}

// forEach calls fn for indexes 0..n-1, at most fanout at a time, each with its
// own context bounded by timeout, and returns when all are done.
func forEach(ctx context.Context, n, fanout int, timeout time.Duration, fn func(ctx context.Context, i int)) {
	if fanout < 1 {
		fanout = 1
	}
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			fn(nctx, i)
		}()
	}
	wg.Wait()
}

// timeoutError is msg, prefixed with the deadline when err came from it.
func timeoutError(nctx context.Context, err error, msg string, timeout time.Duration) string {
	if isTimeout(err) || nctx.Err() != nil {
		return fmt.Sprintf("no answer within %s: %s", timeout, msg)
	}
	return msg
}
