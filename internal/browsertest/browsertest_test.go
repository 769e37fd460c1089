package browsertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestRendersLocalPage loads a file:// page with a script and reads what
// the browser made of it: proof the browser runs, not only starts.
func TestRendersLocalPage(t *testing.T) {
	ctx := New(t)
	page := filepath.Join(t.TempDir(), "p.html")
	os.WriteFile(page, []byte(`<p id="x">static</p><script>document.getElementById("x").textContent = "from-js-" + (6*7)</script>`), 0o644)
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text("#x"))
	if err != nil {
		t.Fatal(err)
	}
	if got != "from-js-42" {
		t.Errorf("rendered text %q, want from-js-42", got)
	}
}
