package httpboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

// memStates reads node states back from the in-memory store.
type memStates struct{ *store.Memory }

func (m memStates) Get(node string) (nodestate.Node, bool) {
	n, err := m.State(context.Background(), node)
	return n, err == nil
}

func (m memStates) Counts() map[nodestate.State]int {
	list, _ := m.States(context.Background())
	c := map[nodestate.State]int{}
	for _, n := range list {
		c[n.State]++
	}
	return c
}

// putNodes adds nodes to the store's inventory.
func putNodes(t testing.TB, m *store.Memory, nodes ...inventory.Node) {
	t.Helper()
	err := m.Update(context.Background(), func(inv *inventory.Inventory) error {
		for _, n := range nodes {
			if err := inv.Put(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fakeNFS answers exports like the NFS server would.
type fakeNFS struct{ host string }

func (f fakeNFS) Export(name, digest string) (string, string, error) {
	return f.host, "/imgctl/" + name + "/" + images.DigestHex(digest)[:12], nil
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// fixture is a server over a real artifact store and state store.
type fixture struct {
	srv    *Server
	store  *images.Store
	entry  *images.Entry
	states memStates
	nodes  *store.Memory
	logs   *syncBuf
	root   []byte // the root image's bytes
	kernel []byte
}

const testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func writeSet(t testing.TB, store *images.Store, name, digest string, rootSize int) (*images.Entry, map[string][]byte) {
	t.Helper()
	dir, err := store.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{images.Kernel: []byte("KERNEL-" + name), images.Initramfs: []byte("INITRAMFS-" + name)}
	root := make([]byte, rootSize)
	rand.Read(root)
	files[images.RootFS] = root
	names := map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img", images.RootFS: "rootfs.squashfs"}
	m := images.Manifest{Version: images.ManifestVersion, Name: name, ImageDigest: digest, Cmdline: "console=ttyS0 quiet",
		Created: time.Unix(1700000000, 0).UTC(), Artifacts: map[string]images.Artifact{}, Root: images.RootImage{Format: "squashfs", PieceSize: 1 << 16}}
	for k, b := range files {
		if err := os.WriteFile(filepath.Join(dir, names[k]), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		m.Artifacts[k] = images.Artifact{File: names[k], Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
	}
	m.Root.Pieces, _, err = images.HashPieces(context.Background(), bytes.NewReader(root), m.Root.PieceSize)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, overlayDir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, overlayDir, "etc", "hostname.tmpl"), []byte("{{ .Hostname }}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, overlayDir, "etc", "secret.tmpl"), []byte("{{ index .Vars \"secret\" }}\n"), 0o600)
	b, _ := jsonMarshal(m)
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := store.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e, files
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	state := t.TempDir()
	artifacts := images.NewStore(state)
	e, files := writeSet(t, artifacts, "compute", testDigest, 300_000)
	nodes := store.NewMemory()
	putNodes(t, nodes,
		inventory.Node{Name: "nid001", MACs: []string{"52:54:00:00:00:01"}, IP: "10.43.0.11",
			Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeLive, Cmdline: "mitigations=off", Vars: map[string]string{"secret": "s3cret-nid001"}}},
		inventory.Node{Name: "nid002", MACs: []string{"52:54:00:00:00:02"}, IP: "10.43.0.12",
			Settings: inventory.Settings{Image: "compute", Mode: inventory.ModeNFS, Vars: map[string]string{"secret": "s3cret-nid002"}}})
	tokens, err := nodetoken.LoadSecret(filepath.Join(state, "httpboot.secret"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://10.43.0.1:8080"
	}
	logs := &syncBuf{}
	boot := bootspec.New(bootspec.Config{PublicURL: cfg.PublicURL, Console: cfg.Console}, nodes, artifacts, fakeNFS{host: "10.43.0.1"}, tokens)
	srv, err := New(cfg, Deps{
		StateDir: state, Store: nodes, Boot: boot, Tokens: tokens, Artifacts: artifacts,
		Log:    slog.New(slog.NewTextHandler(logs, nil)),
		Reload: func(context.Context) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, store: artifacts, entry: e, states: memStates{nodes}, nodes: nodes, logs: logs, root: files[images.RootFS], kernel: files[images.Kernel]}
}
