package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestModifyConcurrentWritersLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.yaml")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := Modify(path, func(inv *Inventory) error {
				return inv.Put(Node{Name: fmt.Sprintf("n%02d", i), IP: fmt.Sprintf("10.41.1.%d", i+1)})
			})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Len(); got != 40 {
		t.Fatalf("after 40 concurrent adds the file holds %d nodes", got)
	}
}

func TestStoreReloadsAndUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.yaml")
	s, err := OpenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.interval = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// A write by someone else (the CLI) shows up in the snapshot.
	if _, err := Modify(path, func(inv *Inventory) error { return inv.Put(Node{Name: "a", IP: "10.41.1.1"}) }); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := s.Snapshot().Node("a"); ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("store never reloaded the changed file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A broken edit keeps the last good snapshot.
	os.WriteFile(path, []byte("nodes: {a: {ip: nope}}\n"), 0o600)
	if err := s.Reload(ctx); err == nil {
		t.Fatal("broken file reloaded without error")
	}
	if _, ok := s.Snapshot().Node("a"); !ok {
		t.Fatal("broken file replaced the snapshot")
	}
	os.WriteFile(path, []byte("nodes: {a: {ip: 10.41.1.1}}\n"), 0o600)
	// Update is read-modify-write of the file, and a failing fn changes nothing.
	if err := s.Update(ctx, func(inv *Inventory) error { return inv.Put(Node{Name: "b", MACs: []string{"02:00:00:00:00:01"}}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(inv *Inventory) error { return inv.Put(Node{Name: "c", IP: "10.41.1.1"}) }); err == nil {
		t.Fatal("duplicate IP accepted by Update")
	}
	var names []string
	for _, n := range s.Snapshot().Nodes() {
		names = append(names, n.Name)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Fatalf("nodes (-want +got):\n%s", diff)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGroupsMergeOrderAndRemove(t *testing.T) {
	inv := &Inventory{}
	for _, g := range []struct {
		name string
		s    Settings
	}{
		{"a", Settings{Image: "img-a", Domain: "a.example", Vars: map[string]string{"x": "a", "y": "a"}}},
		{"b", Settings{Image: "img-b", Vars: map[string]string{"y": "b"}}},
	} {
		if err := inv.PutGroup(g.name, Group{Settings: g.s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.Put(Node{Name: "n1", Groups: []string{"a", "b"}, Settings: Settings{Vars: map[string]string{"z": "n"}}}); err != nil {
		t.Fatal(err)
	}
	n, _ := inv.Node("n1")
	want := Settings{Image: "img-b", Domain: "a.example", Vars: map[string]string{"x": "a", "y": "b", "z": "n"}}
	if diff := cmp.Diff(want, n.Settings); diff != "" {
		t.Fatalf("merged settings (-want +got):\n%s", diff)
	}
	if err := inv.RemoveGroup("a"); err == nil {
		t.Fatal("removed a group in use")
	}
	if err := inv.PutGroup("c", Group{Settings: Settings{Mode: "disk"}}); err == nil {
		t.Fatal("group with bad mode accepted")
	}
	if got := len(inv.Groups()); got != 2 {
		t.Fatalf("groups = %d, want 2", got)
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range seeds {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("nodes:\n  n1: {macs: [aa:bb:cc:dd:ee:ff], ip: 10.0.0.1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("nodes.yaml", data)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip and keep its lookups.
		dir := t.TempDir()
		if err := inv.Save(filepath.Join(dir, "n.yaml")); err != nil {
			t.Fatal(err)
		}
		again, err := Load(filepath.Join(dir, "n.yaml"))
		if err != nil {
			t.Fatalf("saved inventory does not load: %v", err)
		}
		if again.Len() != inv.Len() {
			t.Fatalf("round trip: %d nodes, want %d", again.Len(), inv.Len())
		}
	})
}
