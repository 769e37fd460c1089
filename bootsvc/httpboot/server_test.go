package httpboot

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/klauspost/compress/zstd"
)

func (f *fixture) do(method, target, peer string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = peer + ":40000"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, r)
	return w
}

var tokenRE = regexp.MustCompile(`imgctl\.token=(\S+)`)

func (f *fixture) script(t *testing.T, mac, peer string) string {
	t.Helper()
	w := f.do("GET", "/ipxe?mac="+mac, peer, nil)
	if w.Code != 200 {
		t.Fatalf("ipxe %s: %d %s", mac, w.Code, w.Body)
	}
	return w.Body.String()
}

func TestIPXEScript(t *testing.T) {
	f := newFixture(t, Config{RetryPause: 3e9, Retries: 7})
	hex := strings.TrimPrefix(testDigest, "sha256:")
	tests := []struct {
		name, target, peer string
		want, notWant      []string
	}{
		{"live by mac", "/ipxe?mac=52:54:00:00:00:01", "10.43.0.11", []string{
			"#!ipxe",
			"kernel --name kernel http://10.43.0.1:8080/artifacts/compute/" + hex + "/vmlinuz ",
			"initrd --name initrd http://10.43.0.1:8080/artifacts/compute/" + hex + "/initramfs.img",
			"initrd --name overlay http://10.43.0.1:8080/nodes/nid001/overlay.cpio.zst?token=t1.",
			"console=ttyS0 quiet mitigations=off BOOTIF=01-${netX/mac:hexhyp} systemd.hostname=nid001 ip=dhcp rd.neednet=1",
			"imgctl.url=http://10.43.0.1:8080 imgctl.node=nid001 imgctl.token=t1.",
			"imgctl.mode=live imgctl.manifest=http://10.43.0.1:8080/artifacts/compute/" + hex + "/manifest.json",
			"imgctl.root=http://10.43.0.1:8080/artifacts/compute/" + hex + "/rootfs.squashfs",
			"iseq ${tries} 7 && goto fail ||", "sleep 3", "goto kernel", ":fail", "reboot", "boot ||",
		}, []string{"root=nfs4"}},
		{"live by source ip", "/ipxe", "10.43.0.11", []string{"imgctl.node=nid001", "imgctl.mode=live"}, nil},
		{"nfs", "/ipxe?mac=52:54:00:00:00:02", "10.43.0.12", []string{
			"imgctl.mode=nfs", "imgctl.root=nfs://10.43.0.1/imgctl/compute/111111111111", "root=nfs4:10.43.0.1:/imgctl/compute/111111111111:ro rootovl",
		}, []string{"rootfs.squashfs"}},
		{"unknown mac", "/ipxe?mac=52:54:00:99:99:99", "10.43.0.99", []string{
			"not in the inventory", "sleep 30", "chain --autofree http://10.43.0.1:8080/ipxe?mac=52%3A54%3A00%3A99%3A99%3A99",
		}, []string{"kernel"}},
		{"unknown ip", "/ipxe", "10.43.0.98", []string{"not in the inventory", "${netX/mac}"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do("GET", tc.target, tc.peer, nil)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("script lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(body, s) {
					t.Errorf("script has %q:\n%s", s, body)
				}
			}
		})
	}
	if !strings.Contains(f.logs.String(), "unknown node") {
		t.Errorf("no log line for the unknown node:\n%s", f.logs)
	}
	if n, _ := f.states.Get("nid001"); n.State != nodestate.IPXE || n.ImageDigest != testDigest {
		t.Errorf("nid001 state after script = %+v", n)
	}
	if w := f.do("GET", "/ipxe?mac=zz", "10.43.0.11", nil); w.Code != 400 {
		t.Errorf("bad mac: %d", w.Code)
	}
}

func TestArtifacts(t *testing.T) {
	f := newFixture(t, Config{})
	hex := strings.TrimPrefix(testDigest, "sha256:")
	base := "/artifacts/compute/" + hex + "/"
	w := f.do("GET", base+"rootfs.squashfs", "10.43.0.50", nil)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), f.root) {
		t.Fatalf("full get: %d, %d bytes", w.Code, w.Body.Len())
	}
	etag := w.Header().Get("ETag")
	if etag != `"`+f.entry.Manifest.Artifacts["rootfs"].SHA256+`"` {
		t.Errorf("etag %s", etag)
	}
	w = f.do("GET", base+"rootfs.squashfs", "10.43.0.50", nil, "Range", "bytes=1000-70999")
	if w.Code != 206 || !bytes.Equal(w.Body.Bytes(), f.root[1000:71000]) {
		t.Errorf("range: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w = f.do("GET", base+"rootfs.squashfs", "10.43.0.50", nil, "If-None-Match", etag); w.Code != 304 {
		t.Errorf("if-none-match: %d", w.Code)
	}
	if w = f.do("GET", base+"manifest.json", "10.43.0.50", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"image_digest"`) {
		t.Errorf("manifest: %d", w.Code)
	}
	// The kernel fetch by a known node records its kernel state.
	if w = f.do("GET", base+"vmlinuz", "10.43.0.11", nil); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), f.kernel) {
		t.Errorf("kernel: %d", w.Code)
	}
	if n, _ := f.states.Get("nid001"); n.State != nodestate.Kernel {
		t.Errorf("nid001 state after kernel = %q", n.State)
	}
	metrics := f.do("GET", "/metrics", "10.43.0.5", nil).Body.String()
	for kind, n := range map[string]int{"rootfs": len(f.root) + 70000, "kernel": len(f.kernel)} {
		want := fmt.Sprintf(`imgctl_http_artifact_bytes_total{kind=%q} %s`, kind, strconv.FormatFloat(float64(n), 'g', -1, 64))
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, p := range []string{
		"/artifacts/compute/" + hex + "/..%2f..%2fhttpboot.secret",
		"/artifacts/compute/" + hex + "/%2e%2e",
		"/artifacts/..%2f..%2f/" + hex + "/vmlinuz",
		"/artifacts/compute/abc/vmlinuz",
		"/artifacts/compute/" + hex + "/nofile",
		"/artifacts/compute/" + hex + "/overlay",
	} {
		w := f.do("GET", p, "10.43.0.66", nil)
		if w.Code < 400 || bytes.Contains(w.Body.Bytes(), []byte("KERNEL")) {
			t.Errorf("%s: status %d", p, w.Code)
		}
	}
	if !strings.Contains(f.logs.String(), "refused malformed path") {
		t.Errorf("no log line for traversal:\n%s", f.logs)
	}
	// Corrupt the root image in place (same size): the change is noticed,
	// the set re-verified and refused.
	bad := append([]byte(nil), f.root...)
	bad[5] ^= 0xff
	if err := os.WriteFile(filepath.Join(f.entry.Dir, "rootfs.squashfs"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if w = f.do("GET", base+"vmlinuz", "10.43.0.50", nil); w.Code != 503 {
		t.Errorf("corrupt set served: %d", w.Code)
	}
	if !strings.Contains(f.logs.String(), "refusing corrupt set") {
		t.Errorf("no log line for the corrupt set:\n%s", f.logs)
	}
	os.WriteFile(filepath.Join(f.entry.Dir, "rootfs.squashfs"), f.root, 0o644)
	if w = f.do("GET", base+"vmlinuz", "10.43.0.50", nil); w.Code != 200 {
		t.Errorf("repaired set refused: %d", w.Code)
	}
}

func TestOverlayAccess(t *testing.T) {
	f := newFixture(t, Config{})
	tok1 := tokenRE.FindStringSubmatch(f.script(t, "52:54:00:00:00:01", "10.43.0.11"))[1]
	tok2 := tokenRE.FindStringSubmatch(f.script(t, "52:54:00:00:00:02", "10.43.0.12"))[1]
	w := f.do("GET", "/nodes/nid001/overlay.cpio.zst?token="+url.QueryEscape(tok1), "10.43.0.11", nil)
	if w.Code != 200 {
		t.Fatalf("overlay: %d %s", w.Code, w.Body)
	}
	zr, err := zstd.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"imgctl-overlay/etc/hostname", "nid001\n", "s3cret-nid001"} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("overlay lacks %q", s)
		}
	}
	if bytes.Contains(raw, []byte("s3cret-nid002")) {
		t.Error("overlay carries another node's secret")
	}
	// A second request hits the cache (same bytes).
	if w2 := f.do("GET", "/nodes/nid001/overlay.cpio.zst?token="+url.QueryEscape(tok1), "10.43.0.11", nil); !bytes.Equal(w2.Body.Bytes(), w.Body.Bytes()) {
		t.Error("cached overlay differs")
	}
	refused := []struct{ name, target, peer string }{
		{"other node's token", "/nodes/nid001/overlay.cpio.zst?token=" + url.QueryEscape(tok2), "10.43.0.11"},
		{"other node's address", "/nodes/nid001/overlay.cpio.zst?token=" + url.QueryEscape(tok1), "10.43.0.12"},
		{"no token", "/nodes/nid001/overlay.cpio.zst", "10.43.0.11"},
		{"garbage token", "/nodes/nid001/overlay.cpio.zst?token=t1.AAAA", "10.43.0.11"},
		{"unknown node", "/nodes/nid999/overlay.cpio.zst?token=" + url.QueryEscape(tok1), "10.43.0.11"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(f.logs.String(), "refused")
			w := f.do("GET", tc.target, tc.peer, nil)
			if w.Code != 403 && w.Code != 404 {
				t.Errorf("status %d", w.Code)
			}
			if bytes.Contains(w.Body.Bytes(), []byte("s3cret")) {
				t.Error("secret leaked")
			}
			if strings.Count(f.logs.String(), "refused") != before+1 {
				t.Errorf("no refusal log line")
			}
		})
	}
	if testing.Short() {
		return
	}
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-it")
		cmd.Stdin = bytes.NewReader(raw)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "imgctl-overlay/etc/secret") {
			t.Errorf("cpio -it: %v\n%s", err, out)
		}
	}
}

func TestPhoneHomeAndAdmin(t *testing.T) {
	f := newFixture(t, Config{AdminToken: "admin-token-0123456789"})
	tok1 := tokenRE.FindStringSubmatch(f.script(t, "52:54:00:00:00:01", "10.43.0.11"))[1]
	target := "/api/v1/nodes/nid001/state?token=" + url.QueryEscape(tok1)
	body := `{"state":"booted","detail":"up","image_digest":"` + testDigest + `","root_mount":"overlay / overlay rw","hostname":"nid001","reason":"",` +
		`"timeline":{"kernel_s":4.2,"initrd_s":40.5,"userspace_s":21.3,"slowest":[{"unit":"rpcbind.service","s":1.5}]}}`
	if w := f.do("POST", target, "10.43.0.11", strings.NewReader(body)); w.Code != 204 {
		t.Fatalf("phone-home: %d %s", w.Code, w.Body)
	}
	n, _ := f.states.Get("nid001")
	got := nodestate.Report{State: n.State, Detail: n.Detail, ImageDigest: n.ImageDigest, RootMount: n.RootMount, Hostname: n.Hostname}
	want := nodestate.Report{State: "booted", Detail: "up", ImageDigest: testDigest, RootMount: "overlay / overlay rw", Hostname: "nid001"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	wantTL := &nodestate.Timeline{KernelS: 4.2, InitrdS: 40.5, UserspaceS: 21.3, Slowest: []nodestate.UnitTime{{Unit: "rpcbind.service", Seconds: 1.5}}}
	if diff := cmp.Diff(wantTL, n.Timeline); diff != "" {
		t.Errorf("recorded timeline (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name, body, peer string
		code             int
	}{
		{"unknown state", `{"state":"flying"}`, "10.43.0.11", 400},
		{"bad json", `{"state":`, "10.43.0.11", 400},
		{"unknown field", `{"state":"booted","x":1}`, "10.43.0.11", 400},
		{"timeline before booted", `{"state":"rootfs","timeline":{"userspace_s":1}}`, "10.43.0.11", 400},
		{"negative timeline", `{"state":"booted","timeline":{"userspace_s":-1}}`, "10.43.0.11", 400},
		{"wrong address", `{"state":"failed"}`, "10.43.0.12", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := f.do("POST", target, tc.peer, strings.NewReader(tc.body)); w.Code != tc.code {
				t.Errorf("status %d, want %d", w.Code, tc.code)
			}
		})
	}
	if w := f.do("GET", "/api/v1/admin/nodes", "10.43.0.5", nil); w.Code != 401 {
		t.Errorf("admin without token: %d", w.Code)
	}
	if w := f.do("GET", "/api/v1/admin/nodes", "10.43.0.5", nil, "Authorization", "Bearer wrong"); w.Code != 401 {
		t.Errorf("admin with a wrong token: %d", w.Code)
	}
	w := f.do("GET", "/api/v1/admin/nodes", "10.43.0.5", nil, "Authorization", "Bearer admin-token-0123456789")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"booted"`) {
		t.Errorf("admin nodes: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/api/v1/admin/reload", "10.43.0.5", nil, "Authorization", "Bearer admin-token-0123456789"); w.Code != 204 {
		t.Errorf("admin reload: %d", w.Code)
	}
	w = f.do("GET", "/metrics", "10.43.0.5", nil)
	for _, s := range []string{`imgctl_node_state_count{state="booted"} 1`, `imgctl_http_requests_total{code="204",endpoint="state"} 1`, "imgctl_http_response_bytes_total",
		`imgctl_http_token_refusals_total{node="nid001"} 1`} {
		if !strings.Contains(w.Body.String(), s) {
			t.Errorf("metrics lack %q", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{Listen: ":8080", PublicURL: "http://10.43.0.1:8080"}, nil},
		{"empty", Config{}, []string{"http.listen: empty", "http.public_url: empty"}},
		{"bad", Config{Listen: "nope", PublicURL: "https://x/y", RetryPause: -1, Retries: -2, AdminToken: "short", ScriptTemplate: "/nonexistent"},
			[]string{"http.listen \"nope\"", "http.public_url \"https://x/y\"", "http.retry_pause", "http.retries -2", "http.script_template", "http.admin_token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var got []string
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					got = append(got, line)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d errors", got, len(tc.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
