package httpboot

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

const adminToken = "admin-token-0123456789"

// newCloudInitFixture is newFixture with the cloud-init routes and seeds on,
// nid001 in group compute, and cloud-init data for both.
func newCloudInitFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	cfg.AdminToken = adminToken
	f := newFixture(t, cfg)
	d := f.srv.deps
	d.CloudInit = f.nodes
	d.Boot.(*bootspec.Resolver).WithCloudInit(f.nodes)
	srv, err := New(f.srv.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ctx := context.Background()
	if err := f.nodes.Update(ctx, func(inv *inventory.Inventory) error {
		if err := inv.PutGroup("compute", inventory.Group{}); err != nil {
			return err
		}
		n, _ := inv.Raw("nid001")
		n.Groups = []string{"compute"}
		return inv.Put(n)
	}); err != nil {
		t.Fatal(err)
	}
	for k, data := range map[cloudinit.Key]cloudinit.Data{
		{Scope: cloudinit.Group, Name: "compute"}: {UserData: "#cloud-config\nwrite_files: [{path: /etc/group.txt, content: from-group}]\nruncmd: [[touch, /run/group]]\nfinal_message: group\n"},
		{Scope: cloudinit.Node, Name: "nid001"}:   {UserData: "#cloud-config\nfinal_message: node\n"},
		{Scope: cloudinit.Node, Name: "nid001", Secure: true}: {Merge: cloudinit.Deep,
			UserData: "#cloud-config\nwrite_files: [{path: /etc/munge/munge.key, content: TOPSECRETKEY, permissions: '0400'}]\n"},
	} {
		if err := f.nodes.PutCloudInit(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

var seedRE = regexp.MustCompile(`ds=nocloud-net;s=http://10\.43\.0\.1:8080/cloud-init/(t1\.[A-Za-z0-9_-]+)/(\s|$)`)

func (f *fixture) seedToken(t *testing.T, mac, peer string) string {
	t.Helper()
	m := seedRE.FindStringSubmatch(f.script(t, mac, peer))
	if m == nil {
		t.Fatalf("script for %s has no cloud-init seed", mac)
	}
	return m[1]
}

func TestCloudInitServe(t *testing.T) {
	f := newCloudInitFixture(t, Config{CloudInit: CloudInitConfig{TrustedProxies: []string{"10.43.0.99", "10.43.1.0/24"}, ClusterName: "demo"}})
	if s := f.script(t, "52:54:00:00:00:02", "10.43.0.12"); strings.Contains(s, "ds=nocloud") {
		t.Errorf("nid002 has no cloud-init data but got a seed:\n%s", s)
	}
	tok := f.seedToken(t, "52:54:00:00:00:01", "10.43.0.11")
	// nid002 gets a seed once it has data; its token is another node's for nid001.
	if err := f.nodes.PutCloudInit(context.Background(), cloudinit.Key{Scope: cloudinit.Node, Name: "nid002"}, cloudinit.Data{MetaData: "rack: 2\n"}); err != nil {
		t.Fatal(err)
	}
	tok2 := f.seedToken(t, "52:54:00:00:00:02", "10.43.0.12")
	if err := f.nodes.Report(context.Background(), "nid001", nodestate.Report{State: nodestate.DHCP}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, peer string
		hdr              []string
		code             int
		want, notWant    []string
	}{
		{"meta-data", "/cloud-init/" + tok + "/meta-data", "10.43.0.11", nil, 200,
			[]string{"instance-id: i-", "local-hostname: nid001", "cluster-name: demo"}, nil},
		{"user-data merged with the secure part", "/cloud-init/" + tok + "/user-data", "10.43.0.11", nil, 200,
			[]string{"#cloud-config\n", "/etc/group.txt", "TOPSECRETKEY", "final_message: node", "/run/group"}, []string{"final_message: group"}},
		{"vendor-data", "/cloud-init/" + tok + "/vendor-data", "10.43.0.11", nil, 200, []string{"#cloud-config"}, nil},
		{"network-config not set", "/cloud-init/" + tok + "/network-config", "10.43.0.11", nil, 404, nil, nil},
		{"unknown file", "/cloud-init/" + tok + "/secrets", "10.43.0.11", nil, 404, nil, nil},
		{"another node's token", "/cloud-init/" + tok2 + "/user-data", "10.43.0.11", nil, 403, nil, []string{"TOPSECRET"}},
		{"token from another node's address", "/cloud-init/" + tok + "/user-data", "10.43.0.12", nil, 403, nil, []string{"TOPSECRET"}},
		{"unknown address", "/cloud-init/" + tok + "/user-data", "10.43.0.50", nil, 403, nil, nil},
		{"missing token", "/cloud-init/user-data", "10.43.0.11", nil, 403, nil, []string{"TOPSECRET"}},
		{"empty token: redirected to the missing-token path", "/cloud-init//user-data", "10.43.0.11", nil, 307, nil, []string{"TOPSECRET"}},
		{"bad token", "/cloud-init/t1.AAAA/user-data", "10.43.0.11", nil, 403, nil, nil},
		{"forwarded by a trusted proxy", "/cloud-init/" + tok + "/user-data", "10.43.0.99", []string{"X-Forwarded-For", "10.43.0.11"}, 200, []string{"TOPSECRETKEY"}, nil},
		{"forwarded through two trusted proxies", "/cloud-init/" + tok + "/meta-data", "10.43.0.99", []string{"X-Forwarded-For", "10.43.0.11, 10.43.1.7"}, 200, []string{"nid001"}, nil},
		{"client-supplied hop before the proxy ignored", "/cloud-init/" + tok + "/user-data", "10.43.0.99", []string{"X-Forwarded-For", "10.43.0.11, 10.43.0.12"}, 403, nil, nil},
		{"forwarded-for from a non-proxy ignored", "/cloud-init/" + tok + "/user-data", "10.43.0.12", []string{"X-Forwarded-For", "10.43.0.11"}, 403, nil, []string{"TOPSECRET"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do("GET", tc.path, tc.peer, nil, tc.hdr...)
			if w.Code != tc.code {
				t.Fatalf("%s from %s: %d %s, want %d", tc.path, tc.peer, w.Code, w.Body, tc.code)
			}
			for _, s := range tc.want {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("body lacks %q:\n%s", s, w.Body)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(w.Body.String(), s) {
					t.Errorf("body has %q:\n%s", s, w.Body)
				}
			}
		})
	}
	logs := f.logs.String()
	for _, want := range []string{`msg="cloud-init: refused" server=http ip=10.43.0.11 peer=10.43.0.11 why="missing token"`,
		`msg="cloud-init: refused" server=http ip=10.43.0.11 peer=10.43.0.11 file=user-data why="token not valid for this node" node=nid001`,
		`msg=cloud-init server=http node=nid001 ip=10.43.0.11 file=meta-data`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, secret := range []string{tok, tok2, "TOPSECRET"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds a secret (%.12s…)", secret)
		}
	}
	n, _ := f.nodes.State(context.Background(), "nid001")
	if _, ok := n.Phases[nodestate.CloudInit]; !ok || n.CloudInit != "meta-data user-data vendor-data from 10.43.0.11" {
		t.Errorf("record: phases %v, cloud-init %q", n.Phases, n.CloudInit)
	}
	// The instance-id holds across fetches.
	a := f.do("GET", "/cloud-init/"+tok+"/meta-data", "10.43.0.11", nil).Body.String()
	b := f.do("GET", "/cloud-init/"+tok+"/meta-data", "10.43.0.11", nil).Body.String()
	if a != b {
		t.Errorf("meta-data changed between fetches:\n%s\n%s", a, b)
	}
}

func TestCloudInitAdmin(t *testing.T) {
	f := newCloudInitFixture(t, Config{})
	auth := []string{"Authorization", "Bearer " + adminToken}
	tutorial := `{"name": "compute", "cloud-init": {"userdata": {"runcmd": ["echo from the tutorial"]}, "metadata": {"groups": {"compute": {"role": "worker"}}}, "vendordata": {}}}`
	steps := []struct {
		name, method, path, body string
		hdr                      []string
		code                     int
		want, notWant            []string
	}{
		{"no admin token", "GET", "/api/v1/admin/cloud-init", "", nil, 401, nil, nil},
		{"list", "GET", "/api/v1/admin/cloud-init", "", auth, 200, []string{`"scope":"group","name":"compute"`, `"name":"nid001","secure":true`}, nil},
		{"tutorial payload", "POST", "/api/v1/admin/cloud-init", tutorial, auth, 200, []string{`"scope":"group","name":"compute"`}, nil},
		{"payload for an unknown name", "POST", "/api/v1/admin/cloud-init", strings.Replace(tutorial, "compute", "nosuch", 1), auth, 404, nil, nil},
		{"bad cloud-config names line and key", "PUT", "/api/v1/admin/cloud-init/nodes/nid002", "#cloud-config\nruncmd: ls\n", auth, 400, []string{"line 2", "runcmd"}, nil},
		{"put node", "PUT", "/api/v1/admin/cloud-init/nodes/nid002", "#cloud-config\nruncmd: [ls]\n", auth, 200, nil, nil},
		{"get record", "GET", "/api/v1/admin/cloud-init/groups/compute", "", auth, 200, []string{"echo from the tutorial"}, nil},
		{"group preview", "GET", "/api/v1/admin/cloud-init/groups/compute/user-data", "", auth, 200, []string{"#cloud-config", "echo from the tutorial"}, nil},
		{"group preview meta-data", "GET", "/api/v1/admin/cloud-init/groups/compute/meta-data", "", auth, 200, []string{"role: worker"}, []string{"instance-id"}},
		{"node preview without the secure part", "GET", "/api/v1/admin/cloud-init/nodes/nid001/user-data", "", auth, 200, []string{"echo from the tutorial", "final_message: node"}, []string{"TOPSECRET"}},
		{"node preview with it", "GET", "/api/v1/admin/cloud-init/nodes/nid001/user-data?secure=true", "", auth, 200, []string{"TOPSECRETKEY"}, nil},
		{"node preview meta-data", "GET", "/api/v1/admin/cloud-init/nodes/nid001/meta-data", "", auth, 200, []string{"instance-id: i-", "local-hostname: nid001"}, nil},
		{"preview of an unknown node", "GET", "/api/v1/admin/cloud-init/nodes/nid009/user-data", "", auth, 404, nil, nil},
		{"bad scope", "GET", "/api/v1/admin/cloud-init/racks/r1", "", auth, 400, nil, nil},
		{"delete secure part", "DELETE", "/api/v1/admin/cloud-init/nodes/nid001?secure=true", "", auth, 204, nil, nil},
		{"delete again", "DELETE", "/api/v1/admin/cloud-init/nodes/nid001?secure=true", "", auth, 404, nil, nil},
		{"secure part gone", "GET", "/api/v1/admin/cloud-init/nodes/nid001/user-data?secure=true", "", auth, 200, nil, []string{"TOPSECRET"}},
	}
	for _, st := range steps {
		w := f.do(st.method, st.path, "10.43.0.5", strings.NewReader(st.body), st.hdr...)
		if w.Code != st.code {
			t.Errorf("%s: %s %s: %d %s, want %d", st.name, st.method, st.path, w.Code, w.Body, st.code)
			continue
		}
		for _, s := range st.want {
			if !strings.Contains(w.Body.String(), s) {
				t.Errorf("%s: body lacks %q:\n%s", st.name, s, w.Body)
			}
		}
		for _, s := range st.notWant {
			if strings.Contains(w.Body.String(), s) {
				t.Errorf("%s: body has %q", st.name, s)
			}
		}
	}
}

func TestCloudInitConfigValidate(t *testing.T) {
	c := Config{Listen: ":8080", PublicURL: "http://10.0.0.1:8080", CloudInit: CloudInitConfig{TrustedProxies: []string{"10.0.0.5", "10.1.0.0/16", "proxy.example", "10.2.0.0/99"}}}
	err := c.Validate()
	if err == nil {
		t.Fatal("bad proxies accepted")
	}
	for _, want := range []string{`http.cloud_init.trusted_proxies[2] "proxy.example"`, `http.cloud_init.trusted_proxies[3] "10.2.0.0/99"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "[0]") || strings.Contains(err.Error(), "[1]") {
		t.Errorf("good entries refused: %v", err)
	}
}
