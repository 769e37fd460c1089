package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestNewRunsScript loads a page from a loopback server and reads what its
// script wrote into the DOM, then keeps a screenshot.
func TestNewRunsScript(t *testing.T) {
	ctx := New(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><p id="out"></p><script>document.getElementById('out').textContent = 6 * 7;</script>`)
	}))
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out")))
	if err != nil || got != "42" {
		t.Fatalf("text %q, %v; want 42", got, err)
	}
	t.Setenv("IMGCTL_TEST_ARTIFACTS", t.TempDir())
	if st, err := os.Stat(Screenshot(t, ctx, "page")); err != nil || st.Size() == 0 {
		t.Fatalf("screenshot: %v", err)
	}
}
