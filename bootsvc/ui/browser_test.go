package ui

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/internal/browsertest"
)

// waitJS waits until expr is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	if _, err := pollRetry[chromedp.Void](pctx, expr); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__ui) + ' ' + (document.getElementById('count')||{}).textContent + ' ' + (document.getElementById('filter-error')||{}).textContent`))
		t.Fatalf("%s: %v (page: %s)", what, err, state)
	}
}

// TestPageInBrowser signs in through the login form of a dashboard over the
// file store and watches a node's row follow its reports, with no reload.
func TestPageInBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	f := newFixture(t, 200)
	step := func(what string, a ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, a...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: %v (at %s)", what, err, loc)
		}
	}
	step("login form", chromedp.Navigate(f.http.URL+"/ui"), chromedp.WaitVisible(chromedp.CSS("#token")))
	step("sign in", chromedp.SendKeys(chromedp.CSS("#token"), viewerTok), chromedp.Submit(chromedp.CSS("#token")))
	step("dashboard", chromedp.WaitVisible(chromedp.CSS("#viewport")))
	waitJS(t, ctx, "table loaded", `window.__ui && __ui.loads > 0 && document.getElementById('count').textContent === '200 of 200 nodes'`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__marker = 1; true`)); err != nil {
		t.Fatal(err)
	}
	for _, st := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.RootFS, nodestate.Booted} {
		if err := f.store.Report(context.Background(), "node003", nodestate.Report{State: st, ImageDigest: digestA}); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "node003 "+string(st), `document.querySelector('[data-node="node003"] .c-state')?.textContent === '`+string(st)+`'`)
	}
	waitJS(t, ctx, "stale flag", `document.querySelector('[data-node="node003"] .c-digest')?.textContent.endsWith('stale')`)
	step("sort by state, descending", chromedp.Click(chromedp.CSS(`#thead [data-sort="state"]`)), chromedp.Click(chromedp.CSS(`#thead [data-sort="state"]`)))
	waitJS(t, ctx, "booted node first", `document.querySelector('#rows .row')?.dataset.node === 'node003'`)
	setSelect := func(id, v string) string {
		return `(() => { const s = document.getElementById('` + id + `'); s.value = '` + v + `'; s.dispatchEvent(new Event('change')); return true; })()`
	}
	waitJS(t, ctx, "group filter", setSelect("f-group", "rack2")+` && document.getElementById('count').textContent === '100 of 200 nodes'`)
	waitJS(t, ctx, "group and state filter", setSelect("f-state", "booted")+` && document.getElementById('count').textContent === '0 of 200 nodes'`)
	waitJS(t, ctx, "state filter", setSelect("f-group", "")+` && document.getElementById('count').textContent === '1 of 200 nodes'`)
	waitJS(t, ctx, "filters off", setSelect("f-state", "")+` && document.getElementById('count').textContent === '200 of 200 nodes'`)
	step("filter", chromedp.SendKeys(chromedp.CSS("#f-hostlist"), "node[001-010,150]"))
	waitJS(t, ctx, "hostlist filter", `document.getElementById('count').textContent === '11 of 11 nodes' && document.querySelectorAll('#rows .row').length === 11`)
	waitJS(t, ctx, "no reload", `window.__marker === 1`)
}
