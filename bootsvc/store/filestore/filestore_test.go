package filestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), Options{StateDir: t.TempDir(), Owner: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReaderFollowsOwner: the CLI's store sees what the boot service records,
// through Watch, and may not record states itself.
func TestReaderFollowsOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	owner, err := Open(ctx, Options{StateDir: dir, Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	reader, err := Open(ctx, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := reader.Report(ctx, "n1", nodestate.Report{State: nodestate.DHCP}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("reader report: err = %v, want ErrNotOwner", err)
	}
	ch := reader.Watch(ctx)
	if err := owner.Update(ctx, func(inv *inventory.Inventory) error { return inv.Put(inventory.Node{Name: "n1"}) }); err != nil {
		t.Fatal(err)
	}
	if err := owner.Report(ctx, "n1", nodestate.Report{State: nodestate.Booted}); err != nil {
		t.Fatal(err)
	}
	for c := range ch {
		if c.Kind == store.StateChanged && c.Node == "n1" {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("reader never saw the owner's state")
	}
	n, err := reader.State(ctx, "n1")
	if err != nil || n.State != nodestate.Booted {
		t.Fatalf("reader sees %v, %v; want booted", n.State, err)
	}
	if _, err := reader.Node(ctx, "n1"); err != nil {
		t.Fatalf("reader's inventory did not follow the owner's write: %v", err)
	}
}

// TestCloudInitSecureFiles: secure parts sit 0600 in a 0700 tree of their
// own, never in nodes.yaml.
func TestCloudInitSecureFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	s, err := Open(ctx, Options{StateDir: dir, Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(ctx, func(inv *inventory.Inventory) error { return inv.Put(inventory.Node{Name: "n1", IP: "10.41.0.5"}) }); err != nil {
		t.Fatal(err)
	}
	k := cloudinit.Key{Scope: cloudinit.Node, Name: "n1", Secure: true}
	if err := s.PutCloudInit(ctx, k, cloudinit.Data{UserData: "#cloud-config\nwrite_files: [{path: /etc/munge/munge.key, content: TOPSECRET}]\n"}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "cloud-init", "secure"):                    0o700,
		filepath.Join(dir, "cloud-init", "secure", "node"):            0o700,
		filepath.Join(dir, "cloud-init", "secure", "node", "n1.yaml"): 0o600,
	} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", path, st.Mode().Perm(), want)
		}
	}
	inv, err := os.ReadFile(filepath.Join(dir, "nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(inv), "TOPSECRET") {
		t.Errorf("nodes.yaml holds the secure part:\n%s", inv)
	}
}
