package inventory

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// TestStoreNeverPublishesHalfWrittenFile edits nodes.yaml the way an editor
// does (truncate, then write in pieces) while the store polls, with every core
// busy: no snapshot may ever hold fewer nodes than the file.
func TestStoreNeverPublishesHalfWrittenFile(t *testing.T) {
	const nodes = 300
	path := filepath.Join(t.TempDir(), "nodes.yaml")
	var buf bytes.Buffer
	buf.WriteString("nodes:\n")
	for i := 0; i < nodes; i++ {
		fmt.Fprintf(&buf, "  n%03d: {ip: 10.41.%d.%d}\n", i, i/200, i%200+1)
	}
	full := buf.Bytes()
	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Snapshot().Len(); got != nodes {
		t.Fatalf("opened with %d nodes, want %d", got, nodes)
	}
	s.interval = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	busy(ctx, t)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	bad := make(chan int, 1)
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			if n := s.Snapshot().Len(); n != nodes {
				select {
				case bad <- n:
				default:
				}
				return
			}
			runtime.Gosched()
		}
	}()
	for round := 0; round < 100; round++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(full); off += 512 {
			end := min(off+512, len(full))
			if _, err := f.Write(full[off:end]); err != nil {
				t.Fatal(err)
			}
			runtime.Gosched()
		}
		f.Close()
	}
	close(stopWatch)
	<-watched
	select {
	case n := <-bad:
		t.Fatalf("a snapshot of a file caught mid-write was published: %d nodes, want %d", n, nodes)
	default:
	}
	// The store still follows in-place edits: one more node shows up.
	changed := s.Changed()
	if err := os.WriteFile(path, append(full, "  extra: {ip: 10.41.9.9}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	for s.Snapshot().Len() != nodes+1 {
		select {
		case <-changed:
			changed = s.Changed()
		case <-ctx.Done():
			t.Fatalf("in-place edit never published: %d nodes", s.Snapshot().Len())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// busy keeps every core spinning until ctx ends, as a loaded boot server would.
func busy(ctx context.Context, t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := 0; ctx.Err() == nil; x++ {
				if x%1_000_000 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	t.Cleanup(wg.Wait)
}

func TestModifyCreatesStateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "state")
	if _, err := Modify(filepath.Join(dir, "nodes.yaml"), func(inv *Inventory) error { return inv.Put(Node{Name: "a"}) }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("state dir mode %o, want 700", perm)
	}
}
