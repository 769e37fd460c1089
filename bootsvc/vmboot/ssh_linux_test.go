package vmboot

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBootedNodeSSH runs BootedNode's SSH plumbing (the identity Boot makes,
// the known_hosts from the node's host key in <state>/hostkeys) against a
// local sshd on 127.0.0.1 in a namespace of its own: the test image boot-tiny
// has no sshd, so the booted-VM test cannot host this. A node answering with
// another host key must be refused.
func TestBootedNodeSSH(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ssh", "/usr/sbin/sshd", "ip", "findmnt")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, tmp := t.TempDir(), t.TempDir()
	const node = "sshnode1"
	if _, err := hostkeys.NewStore(filepath.Join(state, "hostkeys")).Get(node); err != nil {
		t.Fatal(err)
	}
	id, pub, err := identity("", tmp, "vmboot@"+node)
	if err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(tmp, "authorized_keys")
	if err := os.WriteFile(auth, []byte(pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// sshd insists on its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	ns, err := netns.New(ctx, netns.UniqueName("vmbssh"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	cfg := filepath.Join(tmp, "sshd_config")
	if err := os.WriteFile(cfg, []byte(strings.Join([]string{
		"ListenAddress 127.0.0.1:22",
		"HostKey " + filepath.Join(state, "hostkeys", node, "ssh_host_ed25519_key"),
		"AuthorizedKeysFile " + auth,
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no", // t.TempDir lives under the world-writable /tmp
		"PidFile none",
		"",
	}, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var sshdLog bytes.Buffer
	sshd := ns.Command(context.Background(), "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	sshd.Stdout, sshd.Stderr = &sshdLog, &sshdLog
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sshd.Wait(); close(done) }()
	t.Cleanup(func() {
		sshd.Process.Signal(syscall.SIGTERM) // `ip netns exec` exec'd sshd: this PID is sshd's
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			sshd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("sshd log:\n%s", sshdLog.String())
		}
	})

	key, err := hostkeys.NewStore(filepath.Join(state, "hostkeys")).Public(node)
	if err != nil {
		t.Fatal(err)
	}
	bn, err := newBootedNode(ns, node, netip.MustParseAddr("127.0.0.1"), 22, key, id, tmp)
	if err != nil {
		t.Fatal(err)
	}
	wantHost, _ := os.ReadFile("/etc/hostname")
	wantFS, _ := exec.Command("findmnt", "-n", "-o", "FSTYPE", "/").Output()
	for _, c := range []struct{ cmd, want string }{
		{"cat /etc/hostname", string(wantHost)},
		{"findmnt -n -o FSTYPE /", string(wantFS)},
	} {
		// The first call also waits out sshd's start (connection refused).
		out, err := bn.Output(ctx, c.cmd)
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		if strings.TrimSpace(string(out)) != strings.TrimSpace(c.want) {
			t.Errorf("%s = %q, want %q", c.cmd, out, c.want)
		}
	}
	if _, err := bn.Output(ctx, "exit 7"); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("failing command: %v, want its exit status", err)
	}

	// The same address with another node's key in known_hosts: refused.
	other, err := hostkeys.NewStore(filepath.Join(state, "hostkeys")).Get("someoneelse")
	if err != nil {
		t.Fatal(err)
	}
	wrongDir := t.TempDir()
	wrong, err := newBootedNode(ns, node, netip.MustParseAddr("127.0.0.1"), 22, other.Public, id, wrongDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Output(ctx, "true"); err == nil || !strings.Contains(err.Error(), "Host key verification failed") {
		t.Errorf("ssh to a node with an unexpected host key: %v, want a host key verification failure", err)
	}
}
