package filestore

import (
	"context"
	"errors"
	"testing"
	"time"

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
