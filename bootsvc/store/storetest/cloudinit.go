package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/store"
)

var (
	ciGroup       = cloudinit.Key{Scope: cloudinit.Group, Name: "compute"}
	ciGroupSecure = cloudinit.Key{Scope: cloudinit.Group, Name: "compute", Secure: true}
	ciNode        = cloudinit.Key{Scope: cloudinit.Node, Name: "nid001"}
)

// putCloudInit stores a group's public and secure part and a node's public part.
func putCloudInit(t *testing.T, ctx context.Context, s store.Store) map[cloudinit.Key]cloudinit.Data {
	t.Helper()
	recs := map[cloudinit.Key]cloudinit.Data{
		ciGroup:       {UserData: "#cloud-config\nruncmd:\n  - [touch, /run/group]\n", MetaData: "site: a\n", Merge: cloudinit.Deep},
		ciGroupSecure: {UserData: "#cloud-config\nwrite_files:\n  - {path: /etc/munge/munge.key, content: c2VjcmV0, encoding: b64, permissions: '0400'}\n"},
		ciNode:        {UserData: "## template: jinja\n#cloud-config\nruncmd: [\"echo {{ v1.local_hostname }}\"]\n", NetworkConfig: "version: 2\n"},
	}
	for k, d := range recs {
		if err := s.PutCloudInit(ctx, k, d); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	return recs
}

func testCloudInit(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	if d, err := s.CloudInit(ctx, ciGroup); err != nil || !d.IsZero() {
		t.Fatalf("empty store: %+v, %v; want the zero Data", d, err)
	}
	if err := s.DeleteCloudInit(ctx, ciGroup); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of nothing: err = %v, want ErrNotFound", err)
	}
	recs := putCloudInit(t, ctx, s)
	for k, want := range recs {
		got, err := s.CloudInit(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s read back (-put +got):\n%s", k, diff)
		}
	}
	keys, err := s.CloudInitKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cloudinit.Key{ciGroup, ciGroupSecure, ciNode}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	// A write that cloud-init would choke on is refused and changes nothing.
	err = s.PutCloudInit(ctx, ciGroup, cloudinit.Data{UserData: "#cloud-config\nruncmd: echo hi\n"})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "runcmd") {
		t.Errorf("runcmd as a scalar: err = %v, want line 2 and key runcmd named", err)
	}
	if err := s.PutCloudInit(ctx, cloudinit.Key{Scope: "rack", Name: "r1"}, recs[ciGroup]); err == nil {
		t.Error("scope rack accepted")
	}
	if err := s.PutCloudInit(ctx, cloudinit.Key{Scope: cloudinit.Node, Name: "../etc"}, recs[ciGroup]); err == nil {
		t.Error("node name ../etc accepted")
	}
	if got, _ := s.CloudInit(ctx, ciGroup); got != recs[ciGroup] {
		t.Errorf("refused write changed the record: %+v", got)
	}
	// Replace, then delete the secure part only.
	repl := cloudinit.Data{UserData: "#cloud-config\npackages: [munge]\n"}
	if err := s.PutCloudInit(ctx, ciGroupSecure, repl); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CloudInit(ctx, ciGroupSecure); got != repl {
		t.Errorf("after replace: %+v", got)
	}
	if err := s.DeleteCloudInit(ctx, ciGroupSecure); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CloudInit(ctx, ciGroupSecure); !got.IsZero() {
		t.Errorf("deleted record still read: %+v", got)
	}
	if got, _ := s.CloudInit(ctx, ciGroup); got != recs[ciGroup] {
		t.Errorf("deleting the secure part touched the public one: %+v", got)
	}
}

func testInstanceIDs(t *testing.T, open Open) {
	ctx := ctxFor(t)
	s := opened(t, open)
	id := func(node, image string) string {
		t.Helper()
		v, err := s.InstanceID(ctx, node, image)
		if err != nil || !strings.HasPrefix(v, "i-") {
			t.Fatalf("instance-id of %s on %s = %q, %v", node, image, v, err)
		}
		return v
	}
	a := id("nid001", "sha256:aa")
	if again := id("nid001", "sha256:aa"); again != a {
		t.Fatalf("same image: instance-id %s then %s", a, again)
	}
	if other := id("nid002", "sha256:aa"); other == a {
		t.Fatalf("two nodes share instance-id %s", a)
	}
	b := id("nid001", "sha256:bb")
	if b == a {
		t.Fatalf("new image kept instance-id %s", a)
	}
	if again := id("nid001", "sha256:bb"); again != b {
		t.Fatalf("new image: instance-id %s then %s", b, again)
	}
	// Back to the old image is another change: cloud-init must run again.
	if back := id("nid001", "sha256:aa"); back == a || back == b {
		t.Fatalf("back to the first image: instance-id %s reused", back)
	}
}
