package ui

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/browsertest"
)

// TestBenchUI measures the dashboard in headless Chromium with 10,000 nodes
// against the same page with 100 nodes and against the raw API in the same
// run: time to first render (page load to the first full table), and time
// to apply 1,000 state reports (store → event stream → rows on the page).
// Runs under make bench only (IMGCTL_BENCH=1); writes bench/results/ui.json.
func TestBenchUI(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	ctx := browsertest.New(t)
	const runs = 3
	figures := map[string]any{"runs": runs, "changes": 1000}
	res := map[int]map[string]float64{}
	for _, n := range []int{100, 10000} {
		f := newFixture(t, n)
		m := map[string]float64{}
		m["api_fetch_ms"] = median(runs, func() float64 { return apiFetch(t, f) })
		m["first_render_ms"] = median(runs, func() float64 { return firstRender(t, ctx, f, n) })
		round := 0
		m["apply_1000_ms"] = median(runs, func() float64 { round++; return applyChanges(t, ctx, f, n, round) })
		if n == 10000 {
			m["sse_raw_1000_ms"] = median(runs, func() float64 { round++; return rawStream(t, f, n, round) })
		}
		res[n] = m
		figures[fmt.Sprintf("nodes_%d", n)] = m
		t.Logf("%d nodes: %v", n, m)
	}
	big, small := res[10000], res[100]
	figures["first_render_10k_vs_100"] = big["first_render_ms"] / small["first_render_ms"]
	figures["first_render_10k_vs_api_fetch"] = big["first_render_ms"] / big["api_fetch_ms"]
	figures["apply_1000_10k_vs_100"] = big["apply_1000_ms"] / small["apply_1000_ms"]
	figures["apply_1000_10k_vs_raw_stream"] = big["apply_1000_ms"] / big["sse_raw_1000_ms"]
	t.Logf("ui: %v", figures)
	if err := benchresult.Write("ui.json", figures); err != nil {
		t.Fatal(err)
	}
}

func median(n int, f func() float64) float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = f()
	}
	sort.Float64s(v)
	return v[n/2]
}

// apiFetch is the baseline for the first render: the node list fetched
// and decoded by a plain Go client.
func apiFetch(t *testing.T, f *fixture) float64 {
	t0 := time.Now()
	var l NodeList
	if code := getJSON(t, f, "/ui/api/nodes", &l); code != http.StatusOK || len(l.Nodes) == 0 {
		t.Fatalf("nodes: %d", code)
	}
	return ms(time.Since(t0))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// firstRender loads the page (signed in by a cookie) and reads when its
// first full table was drawn, from the start of the navigation.
func firstRender(t *testing.T, ctx context.Context, f *fixture, n int) float64 {
	bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(bctx,
		chromedp.Navigate(f.http.URL+"/ui/static/app.css"), // same origin, for the cookie
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`document.cookie = "`+CookieName+`=`+adminTok+`; path=/ui"; undefined`))
			if err != nil && !strings.Contains(err.Error(), "undefined") {
				return err
			}
			return nil
		}),
		chromedp.Navigate(f.http.URL+"/ui"),
	)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pollRetry[float64](bctx, fmt.Sprintf(
		`window.__ui && __ui.firstRender && document.getElementById('count').textContent === '%d of %d nodes' && __ui.firstRender`, n, n))
	if err != nil {
		t.Fatalf("first render of %d nodes: %v", n, err)
	}
	return v
}

// changes makes 1,000 reports over min(n, 1000) nodes, the last one for
// each node in state final; it returns the nodes.
func changes(t *testing.T, f *fixture, n, round int) (names []string, final nodestate.State) {
	width := min(n, 1000)
	per := 1000 / width
	order := []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.RootFS, nodestate.Booted}
	for i := 0; i < width; i++ {
		names = append(names, fmt.Sprintf("node%03d", 1+(i*n/width)))
	}
	for r := 0; r < per; r++ {
		// Each round ends in another state than the last one did.
		final = order[((round*2+r-per+1)%len(order)+len(order))%len(order)]
		for _, name := range names {
			if err := f.store.Report(context.Background(), name, nodestate.Report{State: final}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return names, final
}

// applyChanges times 1,000 reports until the page holds every node's final
// state and has drawn a frame since.
func applyChanges(t *testing.T, ctx context.Context, f *fixture, n, round int) float64 {
	bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	names, final := changes(t, f, n, round)
	list := `["` + strings.Join(names, `","`) + `"]`
	_, err := pollRetry[chromedp.Void](bctx, fmt.Sprintf(
		`%s.every((n) => __ui.stateOf(n) === %q) && __ui.renderedApplied === __ui.applied`, list, final))
	if err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`JSON.stringify(window.__ui) + ' ' + %s.filter((n) => __ui.stateOf(n) !== %q).slice(0, 5)`, list, final)))
		t.Fatalf("apply on %d nodes: %v (page: %s)", n, err, st)
	}
	return ms(time.Since(t0))
}

// rawStream is the baseline for applying changes: the same reports read off
// the event stream by a Go client.
func rawStream(t *testing.T, f *fixture, n, round int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := openStream(t, f, ctx)
	s.next() // hello
	t0 := time.Now()
	names, final := changes(t, f, n, round)
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for len(want) > 0 {
		e := s.next()
		rows := []Row{}
		if e.name == "resync" { // as the page does: read everything again
			var l NodeList
			getJSON(t, f, "/ui/api/nodes", &l)
			rows = l.Nodes
		} else {
			rows = s.rows(e)
		}
		for _, r := range rows {
			if r.State == string(final) {
				delete(want, r.Name)
			}
		}
	}
	return ms(time.Since(t0))
}

// pollRetry is chromedp.Poll, begun again when it raced a navigation (the
// page's JavaScript context it started in went away).
func pollRetry[T any](ctx context.Context, expr string) (T, error) {
	for {
		v, err := chromedp.Run(ctx, chromedp.Poll[T](expr))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") || ctx.Err() != nil {
			return v, err
		}
	}
}
