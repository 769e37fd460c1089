// Package capturetest starts a golden node for capture tests: a real sshd in
// a network namespace of its own, serving a copy of an imgctl-built image.
package capturetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
)

// GoldenNode is an sshd in its own network namespace, serving a copy of the
// bootable test image's root at Root (capture with --root Root): a node an
// admin hand-tunes, as capture tests need one.
type GoldenNode struct {
	Root       string // the node's root directory on this host
	Addr       string // sshd's address, inside the test's own namespace
	Key        string // client private key authorized for root
	KnownHosts string // known_hosts naming Addr with the node's host key
}

// Start copies the bootable fixture's root and serves it over SSH until t ends.
func Start(t *testing.T, ctx context.Context) *GoldenNode {
	t.Helper()
	testenv.RequireCommands(t, "sshd", "ssh-keygen", "tar", "setcap")
	// The bootable fixture, so a capture of it can be flattened and booted.
	src := buildtest.Image(t, "test/fixtures/layers/boot-tiny.yaml")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	img, unmount, err := src.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cp", "-a", img, root).CombinedOutput()
	unmount()
	if err != nil {
		t.Fatalf("copy image root: %v %s", err, out)
	}

	ns, err := netns.New(ctx, netns.UniqueName("cap"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	subnet := fmt.Sprintf("10.46.%d", os.Getpid()%200+1)
	host, peer := netns.UniqueName("ch"), netns.UniqueName("cp")
	if err := netns.Veth(ctx, ns, peer, subnet+".1/24", nil, host, subnet+".2/24"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.IP(context.Background(), "link", "del", host) })

	// Host key, client key, authorized_keys, known_hosts.
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	clientKey := filepath.Join(dir, "client_key")
	os.WriteFile(clientKey, pem.EncodeToMemory(block), 0o600)
	sshPub, _ := ssh.NewPublicKey(pub)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(sshPub), 0o600)
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(subnet+".1 "+string(hostPub)), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress %s.1:22
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
PidFile none
`, subnet, hostKey, filepath.Join(dir, "authorized_keys"))), 0o600)
	sshd := ns.Command(context.Background(), "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	var log strings.Builder
	sshd.Stdout, sshd.Stderr = &log, &log
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sshd.Process.Kill()
		sshd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	waitPort(t, subnet+".1:22")
	return &GoldenNode{Root: root, Addr: subnet + ".1", Key: clientKey, KnownHosts: known}
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}
