package vmboot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/imgctl/imgctl/internal/netns"
)

// BootedNode is a node that reported booted and whose machine still runs,
// as handed to Options.OnBooted. It is valid only during that call.
//
// Commands reach the node over SSH, the only channel into a booted image:
// the system ssh client runs inside the VM's network namespace, logs in as
// root with the boot's identity key (Options.SSHIdentity, or a key made for
// the boot that the node got in its authorized keys) and trusts nothing but
// the node's own host key from HostKeys (<state>/hostkeys/NODE/), written
// into a known_hosts made for this boot, with StrictHostKeyChecking=yes: a
// node answering with any other key is refused.
type BootedNode struct {
	Name string
	IP   netip.Addr

	ns         *netns.NS
	identity   string // private key file
	knownHosts string // file holding only the node's host key
	port       int    // 0 = 22
}

// newBootedNode writes a known_hosts under dir trusting only hostKey (an
// authorized_keys line) for ip:port.
func newBootedNode(ns *netns.NS, name string, ip netip.Addr, port int, hostKey []byte, identity, dir string) (BootedNode, error) {
	f := strings.Fields(string(hostKey))
	if len(f) < 2 {
		return BootedNode{}, fmt.Errorf("host key of %s: %q is not an authorized_keys line", name, hostKey)
	}
	host := ip.String()
	if port != 0 && port != 22 {
		host = fmt.Sprintf("[%s]:%d", ip, port)
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(host+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		return BootedNode{}, fmt.Errorf("known_hosts for %s: %w", name, err)
	}
	return BootedNode{Name: name, IP: ip, ns: ns, identity: identity, knownHosts: kh, port: port}, nil
}

// Command returns the ssh command that runs command (a shell command line)
// as root on the node. The caller sets its stdin/stdout/stderr and runs it;
// ctx kills it.
func (n BootedNode) Command(ctx context.Context, command string) *exec.Cmd {
	port := n.port
	if port == 0 {
		port = 22
	}
	return n.ns.Command(ctx, "ssh", "-F", "/dev/null",
		"-i", n.identity, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+n.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(port), "root@"+n.IP.String(), command)
}

// Output runs command on the node and returns its standard output. While
// the node's sshd is not listening yet (connection refused or timed out)
// it tries again every second until ctx ends. A failure carries ssh's exit
// status and standard error.
func (n BootedNode) Output(ctx context.Context, command string) ([]byte, error) {
	for {
		var stdout, stderr bytes.Buffer
		cmd := n.Command(ctx, command)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			return stdout.Bytes(), nil
		}
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() == nil && notListening(msg) {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				continue
			}
		}
		return stdout.Bytes(), fmt.Errorf("ssh %s %q: %v: %s", n.Name, command, err, msg)
	}
}

// notListening reports whether ssh's error means nothing answered yet.
func notListening(stderr string) bool {
	for _, s := range []string{"Connection refused", "Connection timed out", "No route to host"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// identity returns a private key file for the boot's SSH and its public key
// line: the caller's key, or a new ed25519 key written under dir.
func identity(path, dir, comment string) (file string, public string, err error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("ssh identity: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return "", "", fmt.Errorf("ssh identity %s (an unencrypted OpenSSH key): %w", path, err)
		}
		return path, authorizedKey(signer.PublicKey(), comment), nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("ssh identity: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", "", fmt.Errorf("ssh identity: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("ssh identity: %w", err)
	}
	file = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", "", fmt.Errorf("ssh identity: %w", err)
	}
	return file, authorizedKey(sshPub, comment), nil
}

func authorizedKey(k ssh.PublicKey, comment string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}
