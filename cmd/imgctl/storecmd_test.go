package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
)

// TestStoreExportImport1000Nodes moves a 1,000-node inventory with boot
// states and host keys to a new state directory and back: nothing changes.
func TestStoreExportImport1000Nodes(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "new")
	owner, err := filestore.Open(ctx, filestore.Options{StateDir: src, Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	err = owner.Update(ctx, func(inv *inventory.Inventory) error {
		if err := inv.PutGroup("compute", inventory.Group{Settings: inventory.Settings{Image: "compute-base"}}); err != nil {
			return err
		}
		for i := 0; i < 1000; i++ {
			n := inventory.Node{Name: fmt.Sprintf("nid%04d", i), MACs: []string{fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256)},
				IP: fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), Groups: []string{"compute"}}
			if err := inv.Put(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 7 {
		for _, st := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Booted} {
			if err := owner.Report(ctx, fmt.Sprintf("nid%04d", i), nodestate.Report{State: st, ImageDigest: "sha256:aa"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := owner.HostKey(ctx, "nid0003"); err != nil {
		t.Fatal(err)
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "dump.yaml")
	for _, args := range [][]string{
		{"--state", src, "-q", "store", "export", "-f", dump},
		{"--state", dst, "-q", "store", "import", "-f", dump},
	} {
		if _, errOut, err := runCLI(t, args...); err != nil {
			t.Fatalf("imgctl %v: %v\n%s", args, err, errOut)
		}
	}
	again, _, err := runCLI(t, "--state", dst, "store", "export")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(dump)
	if diff := cmp.Diff(string(first), again); diff != "" {
		t.Fatalf("export of the imported store differs (-first +second):\n%s", diff)
	}
	if n := strings.Count(string(first), "phases:"); n != 143 {
		t.Fatalf("export holds %d boot states, want 143", n)
	}
	fi, err := os.Stat(dump)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v (%v), want 0600: it holds private host keys", fi.Mode(), err)
	}
	out, _, err := runCLI(t, "--state", dst, "node", "ls", "nid0007")
	if err != nil || !strings.Contains(out, "booted") {
		t.Fatalf("node ls after import: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "--state", dst, "store", "import", "-f", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("import of a missing file succeeded")
	}

	// File → PostgreSQL → file: the same dump every time.
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	back, pgDump := t.TempDir(), filepath.Join(t.TempDir(), "pg.yaml")
	for _, args := range [][]string{
		{"--store", url, "-q", "store", "import", "-f", dump},
		{"--store", url, "-q", "store", "export", "-f", pgDump},
		{"--state", back, "-q", "store", "import", "-f", pgDump},
	} {
		if _, errOut, err := runCLI(t, args...); err != nil {
			t.Fatalf("imgctl %v: %v\n%s", args, err, errOut)
		}
	}
	fromPG, _ := os.ReadFile(pgDump)
	if diff := cmp.Diff(string(first), string(fromPG)); diff != "" {
		t.Fatalf("PostgreSQL export differs from the file store's (-file +pg):\n%s", diff)
	}
	final, _, err := runCLI(t, "--state", back, "store", "export")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(first), final); diff != "" {
		t.Fatalf("file → PostgreSQL → file differs (-first +last):\n%s", diff)
	}
	out, _, err = runCLI(t, "--store", url, "node", "ls", "nid0007")
	if err != nil || !strings.Contains(out, "booted") {
		t.Fatalf("node ls on PostgreSQL: %v\n%s", err, out)
	}
}
