package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/images"
)

const (
	adminTok  = "admin-token-0123456789"
	viewerTok = "viewer-token-0123456789"
)

// fixture is a dashboard over a real file store with nodes node[001-N]
// (group rack1 for the first half, rack2 for the rest) on image "img", whose
// current set is digestB (digestA is an older set).
type fixture struct {
	state string
	store store.Store // where the test reports (for PostgreSQL: another server's connection)
	arts  *images.Store
	ui    *Server
	http  *httptest.Server
}

var (
	digestA = "sha256:" + fmt.Sprintf("%064x", 0xa)
	digestB = "sha256:" + fmt.Sprintf("%064x", 0xb)
)

func newFixture(t testing.TB, nodes int) *fixture {
	t.Helper()
	f, file := baseFixture(t, nodes)
	inv, err := inventory.FromFile(file)
	if err == nil {
		err = inv.Save(filepath.Join(f.state, "nodes.yaml"))
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := filestore.Open(context.Background(), filestore.Options{StateDir: f.state, Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	f.serve(t, st)
	return f
}

// newPGFixture is the fixture on PostgreSQL as two boot servers share it:
// the dashboard reads through one connection, the test reports through
// another, so every change reaches the page by LISTEN/NOTIFY.
func newPGFixture(t testing.TB, nodes int) *fixture {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	f, file := baseFixture(t, nodes)
	open := func() *pgstore.Store {
		st, err := pgstore.Open(ctx, pgstore.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	dash, reporter := open(), open()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	changes := dash.Watch(wctx)
	if err := reporter.Import(ctx, &store.Dump{Version: store.DumpVersion, Inventory: file}); err != nil {
		t.Fatal(err)
	}
	// The dashboard's server learns of the inventory by NOTIFY; start once it has.
	for c := range changes {
		if inv, err := dash.Snapshot(ctx); c.Kind != store.StateChanged && err == nil && inv.Len() == nodes {
			break
		}
	}
	if wctx.Err() != nil {
		t.Fatal("the inventory never reached the dashboard's connection")
	}
	f.store = reporter
	f.serve(t, dash)
	return f
}

// baseFixture makes the artifact sets and the inventory's content.
func baseFixture(t testing.TB, nodes int) (*fixture, inventory.File) {
	t.Helper()
	f := &fixture{state: t.TempDir()}
	f.arts = images.NewStore(f.state)
	writeSet(t, f.arts, "img", digestA, time.Now().Add(-time.Hour))
	writeSet(t, f.arts, "img", digestB, time.Now())
	// nodes.yaml written whole: validated once, not once per node.
	file := inventory.File{Groups: map[string]*inventory.Group{}, Nodes: map[string]*inventory.Node{}}
	for _, g := range []string{"rack1", "rack2"} {
		file.Groups[g] = &inventory.Group{Settings: inventory.Settings{Image: "img", Mode: inventory.ModeLive}}
	}
	for i := 1; i <= nodes; i++ {
		g := "rack1"
		if i > nodes/2 {
			g = "rack2"
		}
		file.Nodes[fmt.Sprintf("node%03d", i)] = &inventory.Node{MACs: []string{fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff)},
			Groups: []string{g}}
	}
	return f, file
}

// serve starts the dashboard over st.
func (f *fixture) serve(t testing.TB, st Store) {
	t.Helper()
	var err error
	f.ui, err = New(Config{AdminToken: adminTok, ViewerToken: viewerTok}, Deps{Store: st, Artifacts: f.arts})
	if err != nil {
		t.Fatal(err)
	}

	// Event streams end with the base context, as under imgctl serve;
	// otherwise Close would wait for the browser to hang up.
	base, cancel := context.WithCancel(context.Background())
	f.http = httptest.NewUnstartedServer(f.ui)
	f.http.Config.BaseContext = func(net.Listener) context.Context { return base }
	f.http.Start()
	t.Cleanup(func() { cancel(); f.http.Close() })
}

// writeSet installs a tiny but valid artifact set.
func writeSet(t testing.TB, s *images.Store, name, digest string, created time.Time) {
	t.Helper()
	dir, err := s.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, KernelVersion: "6.1.0-test",
		Created: created.UTC().Truncate(time.Second), Artifacts: map[string]images.Artifact{},
		Root: images.RootImage{Format: "squashfs", Compression: "zstd", PieceSize: 1 << 20}}
	for kind, file := range map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img", images.RootFS: "rootfs.squashfs"} {
		b := bytes.Repeat([]byte(kind), 1000)
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		pieces, sum, err := images.HashPieces(context.Background(), bytes.NewReader(b), m.Root.PieceSize)
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts[kind] = images.Artifact{File: file, Size: int64(len(b)), SHA256: sum}
		if kind == images.RootFS {
			m.Root.Pieces = pieces
		}
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(dir); err != nil {
		t.Fatal(err)
	}
}
