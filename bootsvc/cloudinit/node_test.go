package cloudinit_test

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
)

func put(t *testing.T, s store.Store, k cloudinit.Key, d cloudinit.Data) {
	t.Helper()
	if err := s.PutCloudInit(context.Background(), k, d); err != nil {
		t.Fatal(err)
	}
}

func metaData(t *testing.T, f cloudinit.Files) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(f[cloudinit.MetaData], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNodeRender: a node's files merge its groups in its order, then itself,
// secure parts only when asked; its instance-id holds while the image does.
func TestNodeRender(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	g := func(name string) cloudinit.Key { return cloudinit.Key{Scope: cloudinit.Group, Name: name} }
	put(t, s, g("base"), cloudinit.Data{UserData: "#cloud-config\nruncmd: [base]\nfinal_message: base\n"})
	put(t, s, g("compute"), cloudinit.Data{UserData: "#cloud-config\nruncmd: [compute]\n", Merge: cloudinit.Deep})
	put(t, s, cloudinit.Key{Scope: cloudinit.Group, Name: "compute", Secure: true},
		cloudinit.Data{UserData: "#cloud-config\nwrite_files: [{path: /etc/munge/munge.key, content: S3CRET}]\n", Merge: cloudinit.Deep})
	put(t, s, cloudinit.Key{Scope: cloudinit.Node, Name: "nid001"}, cloudinit.Data{UserData: "#cloud-config\nfinal_message: nid001\n"})
	n := inventory.Node{Name: "nid001", Groups: []string{"base", "compute"}}

	render := func(image string, secure bool) cloudinit.Files {
		t.Helper()
		f, err := cloudinit.ForTarget(ctx, s, cloudinit.Target{Node: &n, Image: image, ClusterName: "demo", Secure: secure})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pub := render("sha256:aa", false)
	var ud map[string]any
	if err := yaml.Unmarshal(pub[cloudinit.UserData], &ud); err != nil {
		t.Fatal(err)
	}
	if got := ud["runcmd"]; len(got.([]any)) != 2 || ud["final_message"] != "nid001" {
		t.Errorf("public user-data: %v", ud)
	}
	if strings.Contains(string(pub[cloudinit.UserData]), "S3CRET") {
		t.Error("public render holds the secure part")
	}
	sec := render("sha256:aa", true)
	if !strings.Contains(string(sec[cloudinit.UserData]), "S3CRET") {
		t.Errorf("secure render lacks the secure part:\n%s", sec[cloudinit.UserData])
	}
	id := metaData(t, pub)["instance-id"]
	if id != metaData(t, sec)["instance-id"] || id != metaData(t, render("sha256:aa", true))["instance-id"] {
		t.Error("instance-id changed between renders of one image")
	}
	next := metaData(t, render("sha256:bb", true))["instance-id"]
	if next == id {
		t.Error("instance-id kept across an image change")
	}
	if again := metaData(t, render("sha256:bb", false))["instance-id"]; again != next {
		t.Error("instance-id of the new image not stable")
	}
	if m := metaData(t, pub); m["local-hostname"] != "nid001" || m["cluster-name"] != "demo" {
		t.Errorf("meta-data defaults: %v", m)
	}
}

func TestSeeded(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	put(t, s, cloudinit.Key{Scope: cloudinit.Group, Name: "compute"}, cloudinit.Data{UserData: "#cloud-config\n{}\n"})
	put(t, s, cloudinit.Key{Scope: cloudinit.Node, Name: "off"}, cloudinit.Data{Disabled: true})
	put(t, s, cloudinit.Key{Scope: cloudinit.Node, Name: "own", Secure: true}, cloudinit.Data{MetaData: "a: b\n"})
	for _, tc := range []struct {
		node inventory.Node
		want bool
	}{
		{inventory.Node{Name: "plain"}, false},
		{inventory.Node{Name: "member", Groups: []string{"other", "compute"}}, true},
		{inventory.Node{Name: "off", Groups: []string{"compute"}}, false},
		{inventory.Node{Name: "own"}, true},
	} {
		got, err := cloudinit.Seeded(ctx, s, tc.node)
		if err != nil || got != tc.want {
			t.Errorf("Seeded(%s) = %v, %v; want %v", tc.node.Name, got, err, tc.want)
		}
	}
}
