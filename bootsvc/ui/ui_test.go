package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
)

func TestAuth(t *testing.T) {
	f := newFixture(t, 4)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, method, path, bearer, cookie string
		form                               url.Values
		code                               int
		body                               string // substring of the body
	}{
		{"page without token is the login form", "GET", "/ui", "", "", nil, 401, `action="/ui/login"`},
		{"page with a wrong token", "GET", "/ui/", "wrong-token-0123456789", "", nil, 401, `action="/ui/login"`},
		{"page with the admin token", "GET", "/ui", adminTok, "", nil, 200, `id="viewport"`},
		{"page with the viewer cookie", "GET", "/ui", "", viewerTok, nil, 200, `id="viewport"`},
		{"stream without token", "GET", "/ui/events", "", "", nil, 401, "unauthorized"},
		{"stream with a wrong cookie", "GET", "/ui/events", "", "nope", nil, 401, "unauthorized"},
		{"nodes without token", "GET", "/ui/api/nodes", "", "", nil, 401, "unauthorized"},
		{"storm without token", "GET", "/ui/api/storm", "", "", nil, 401, "unauthorized"},
		{"images without token", "GET", "/ui/api/images", "", "", nil, 401, "unauthorized"},
		{"nodes with the viewer token", "GET", "/ui/api/nodes", viewerTok, "", nil, 200, `"node001"`},
		{"assets need no token", "GET", "/ui/static/app.js", "", "", nil, 200, "EventSource"},
		{"login with a wrong token", "POST", "/ui/login", "", "", url.Values{"token": {"wrong"}}, 401, "neither the admin nor the viewer token"},
		{"login with the viewer token", "POST", "/ui/login", "", "", url.Values{"token": {viewerTok}}, 303, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.form != nil {
				body = strings.NewReader(tc.form.Encode())
			}
			req, _ := http.NewRequest(tc.method, f.http.URL+tc.path, body)
			if tc.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: CookieName, Value: tc.cookie})
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
				t.Fatalf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
			}
			if tc.code == 303 {
				var c *http.Cookie
				for _, k := range resp.Cookies() {
					if k.Name == CookieName {
						c = k
					}
				}
				if c == nil || c.Value != viewerTok || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui" {
					t.Fatalf("login cookie %+v, want the token, HttpOnly, SameSite=Strict, Path=/ui", c)
				}
			}
		})
	}
}

func getJSON(t *testing.T, f *fixture, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", f.http.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestNodes(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	f.store.Report(ctx, "node002", nodestate.Report{State: nodestate.DHCP})
	f.store.Report(ctx, "node002", nodestate.Report{State: nodestate.Kernel, ImageDigest: digestA})
	f.store.Report(ctx, "node003", nodestate.Report{State: nodestate.Kernel, ImageDigest: digestB})
	f.store.Report(ctx, "node004", nodestate.Report{State: nodestate.Failed, Reason: "root image corrupt"})
	for _, tc := range []struct {
		name, query string
		code        int
		names       int
	}{
		{"all", "", 200, 10},
		{"hostlist", "?hostlist=" + url.QueryEscape("node[002-004,009]"), 200, 4},
		{"hostlist naming unknown nodes", "?hostlist=" + url.QueryEscape("other[1-3]"), 200, 0},
		{"bad hostlist", "?hostlist=" + url.QueryEscape("node[3-"), 400, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l NodeList
			if code := getJSON(t, f, "/ui/api/nodes"+tc.query, &l); code != tc.code || len(l.Nodes) != tc.names {
				t.Fatalf("%d with %d nodes, want %d with %d", code, len(l.Nodes), tc.code, tc.names)
			}
		})
	}
	var l NodeList
	getJSON(t, f, "/ui/api/nodes", &l)
	rows := map[string]Row{}
	for _, r := range l.Nodes {
		rows[r.Name] = r
	}
	if r := rows["node002"]; r.State != "kernel" || !r.Stale || r.Current != digestB || len(r.Phases) != 2 || r.Groups[0] != "rack1" || r.Image != "img" || r.Mode != "live" {
		t.Errorf("node002 %+v: want kernel, stale (booted A, current B), two phases, rack1/img/live", r)
	}
	if r := rows["node003"]; r.Stale || r.Digest != digestB {
		t.Errorf("node003 %+v: want current digest B, not stale", r)
	}
	if r := rows["node004"]; r.State != "failed" || r.Reason != "root image corrupt" {
		t.Errorf("node004 %+v: want failed with its reason", r)
	}
	if r := rows["node001"]; r.State != "" || !r.Seen.IsZero() {
		t.Errorf("node001 %+v: never reported", r)
	}
	if strings.Join(l.Groups, ",") != "rack1,rack2" {
		t.Errorf("groups %v", l.Groups)
	}
}

func TestImages(t *testing.T) {
	f := newFixture(t, 6)
	ctx := context.Background()
	f.store.Report(ctx, "node001", nodestate.Report{State: nodestate.Kernel, ImageDigest: digestA})
	f.store.Report(ctx, "node002", nodestate.Report{State: nodestate.Kernel, ImageDigest: digestB})
	f.store.Report(ctx, "node003", nodestate.Report{State: nodestate.Kernel, ImageDigest: digestB})
	var sets []Set
	if code := getJSON(t, f, "/ui/api/images", &sets); code != 200 || len(sets) != 2 {
		t.Fatalf("%d, %d sets, want 2", code, len(sets))
	}
	cur, old := sets[0], sets[1]
	if !cur.Current || cur.Digest != digestB || cur.Assigned != "node[001-006]" || cur.NAssign != 6 || cur.Booted != "node[002-003]" || cur.NBooted != 2 || cur.Size != 21000 || cur.Files[images.Initramfs] != 9000 {
		t.Errorf("current set %+v", cur)
	}
	if old.Current || old.Digest != digestA || old.Assigned != "" || old.Booted != "node001" {
		t.Errorf("old set %+v", old)
	}
}
