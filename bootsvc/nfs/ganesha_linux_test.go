package nfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

const testDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

// squashSet stores an artifact set whose root image is a real squashfs.
func squashSet(t *testing.T, ctx context.Context, state string) *images.Store {
	t.Helper()
	store := images.NewStore(state)
	dir, err := store.Stage("nfsimg", testDigest)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "os-release"), []byte("ID=imgctl-test\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "suid"), []byte("x"), 0o755)
	os.Chmod(filepath.Join(tree, "suid"), os.ModeSetuid|0o755)
	if out, err := exec.CommandContext(ctx, "mksquashfs", tree, filepath.Join(dir, "root.squashfs"), "-noappend", "-quiet", "-comp", "zstd").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: "nfsimg", ImageDigest: testDigest, Created: time.Now().UTC(),
		Artifacts: map[string]images.Artifact{}, Root: images.RootImage{Format: "squashfs", PieceSize: 1 << 20}}
	for kind, file := range map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initrd", images.RootFS: "root.squashfs"} {
		p := filepath.Join(dir, file)
		if kind != images.RootFS {
			os.WriteFile(p, []byte(kind), 0o644)
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		m.Artifacts[kind] = images.Artifact{File: file, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
		if kind == images.RootFS {
			m.Root.Pieces, _, _ = images.HashPieces(ctx, bytes.NewReader(b), m.Root.PieceSize)
		}
	}
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644)
	if _, err := store.Install(dir); err != nil {
		t.Fatal(err)
	}
	return store
}

// TestGaneshaServesRoot mounts a real squashfs root and runs ganesha in a
// namespace bound to 10.44.0.1, then speaks ONC RPC to it: a NULL call to the
// NFS program, version 4, must be accepted. (No NFS client on this host; the
// QEMU test proves the mount.)
func TestGaneshaServesRoot(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ganesha.nfsd", "mksquashfs", "mount")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	state := t.TempDir()
	artifacts := squashSet(t, ctx, state)
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "nfs", ServerAddr: "10.44.0.1/16", ClientAddr: "10.44.0.2/16"})
	ns, peer := p.Server, p.Client
	dialIn := func(n *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = n.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return })
			return
		}
	}
	nodes := store.NewMemory()
	if err := nodes.Update(ctx, func(inv *inventory.Inventory) error {
		return errors.Join(
			inv.Put(inventory.Node{Name: "n1", Settings: inventory.Settings{Image: "nfsimg", Mode: inventory.ModeNFS}}),
			inv.Put(inventory.Node{Name: "n2", Settings: inventory.Settings{Image: "nfsimg", Mode: inventory.ModeNFS}}),
			inv.Put(inventory.Node{Name: "n3", Settings: inventory.Settings{Image: "other", Mode: inventory.ModeLive}}))
	}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Enabled: true, Address: "10.44.0.1"}
	boot := bootspec.New(bootspec.Config{PublicURL: "http://10.44.0.1:8080"}, nodes, artifacts, NewExports(cfg), nil)
	srv, err := New(cfg, Deps{
		StateDir: state, Boot: boot,
		Wrap: func(c *exec.Cmd) *exec.Cmd {
			w := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, c.Args...)...)
			w.Path, _ = exec.LookPath("ip")
			return w
		},
		Dial: dialIn(ns),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var runErr error
	finished := make(chan struct{})
	go func() { runErr = srv.Run(rctx); close(finished); done <- runErr }()
	mp := srv.mountPoint("nfsimg", testDigest)
	t.Cleanup(func() {
		stop()
		<-finished
		if runErr != nil {
			t.Errorf("run: %v", runErr)
		}
		if mounted(mp) {
			t.Errorf("%s still mounted after Run returned", mp)
			exec.Command("umount", mp).Run()
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		log, _ := os.ReadFile(filepath.Join(state, "nfs", "ganesha.log"))
		t.Fatalf("run ended: %v\n%s", err, log)
	case <-ctx.Done():
		t.Fatal("ganesha not ready")
	}
	if got := srv.Exports(); len(got) != 1 || got[0] != "/imgctl/nfsimg/"+images.DigestHex(testDigest) {
		t.Errorf("exports = %q", got)
	}
	if st, err := os.Stat(filepath.Join(mp, "suid")); err != nil || st.Mode()&os.ModeSetuid == 0 {
		t.Errorf("mounted root lost setuid: %v %v", st, err)
	}
	if host, path, _ := srv.Export("nfsimg", testDigest); host != "10.44.0.1" || !strings.HasSuffix(path, images.DigestHex(testDigest)) {
		t.Errorf("Export = %s %s", host, path)
	}
	// From the peer namespace: an RPC NULL call to NFS v4.
	c, err := dialIn(peer)(ctx, "tcp", "10.44.0.1:2049")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := rpcNull(c, 100003, 4); err != nil {
		log, _ := os.ReadFile(filepath.Join(state, "nfs", "ganesha.log"))
		t.Fatalf("NFSv4 NULL call: %v\n%s", err, log)
	}
}

// rpcNull sends an ONC RPC (RFC 5531) NULL call over TCP and checks the reply
// is MSG_ACCEPTED / SUCCESS.
func rpcNull(c net.Conn, prog, vers uint32) error {
	const xid = 0x1d2c3b4a
	body := make([]byte, 0, 40)
	for _, v := range []uint32{xid, 0 /*CALL*/, 2 /*RPC v2*/, prog, vers, 0 /*NULL*/, 0, 0 /*AUTH_NONE cred*/, 0, 0 /*verf*/} {
		body = binary.BigEndian.AppendUint32(body, v)
	}
	msg := binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(body)))
	if _, err := c.Write(append(msg, body...)); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:]) & 0x7fffffff
	if n < 24 || n > 4096 {
		return &rpcErr{"reply length", n}
	}
	r := make([]byte, n)
	if _, err := io.ReadFull(c, r); err != nil {
		return err
	}
	word := func(i int) uint32 { return binary.BigEndian.Uint32(r[4*i:]) }
	switch {
	case word(0) != xid:
		return &rpcErr{"xid", word(0)}
	case word(1) != 1:
		return &rpcErr{"not a reply", word(1)}
	case word(2) != 0:
		return &rpcErr{"denied", word(2)}
	case word(5) != 0:
		return &rpcErr{"accept_stat", word(5)}
	}
	return nil
}

type rpcErr struct {
	what string
	v    uint32
}

func (e *rpcErr) Error() string {
	return e.what + " " + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, e.v))
}
