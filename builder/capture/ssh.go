// Package capture turns a running node (a "golden client") into an imgctl
// image: it streams the node's root filesystem over SSH with GNU tar and
// commits it through buildah, either whole or as a differential layer on a
// parent image (only changed files, plus whiteouts for removed ones).
package capture

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Target is the node to capture: [USER@]HOST[:PORT].
type Target struct {
	User, Host string
	Port       int
}

// ParseTarget parses [USER@]HOST[:PORT] (user root, port 22 by default).
func ParseTarget(s string) (Target, error) {
	t := Target{User: "root", Port: 22}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		t.User, s = u, rest
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		var port int
		if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port <= 0 || port > 65535 {
			return t, fmt.Errorf("capture target %q: bad port %q", s, p)
		}
		t.Host, t.Port = h, port
	} else {
		t.Host = s
	}
	if t.Host == "" || t.User == "" {
		return t, fmt.Errorf("capture target %q: want [USER@]HOST[:PORT]", s)
	}
	return t, nil
}

func (t Target) addr() string { return net.JoinHostPort(t.Host, fmt.Sprint(t.Port)) }

// SSHOptions say how to authenticate to the node and check its host key.
type SSHOptions struct {
	KeyFile         string // private key; empty = ssh-agent ($SSH_AUTH_SOCK)
	KnownHosts      string // empty = ~/.ssh/known_hosts
	InsecureHostKey bool   // accept any host key (lab use only)
	Timeout         time.Duration
}

// dial connects to the node with the configured key or agent, checking its
// host key against known_hosts unless told not to.
func dial(t Target, o SSHOptions) (*ssh.Client, error) {
	var auths []ssh.AuthMethod
	if o.KeyFile != "" {
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", o.KeyFile, err)
		}
		auths = append(auths, ssh.PublicKeys(signer))
	} else if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		auths = append(auths, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	} else {
		return nil, fmt.Errorf("no SSH key: give -i KEY or run an ssh-agent")
	}
	hostKey := ssh.InsecureIgnoreHostKey()
	if !o.InsecureHostKey {
		path := o.KnownHosts
		if path == "" {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, ".ssh", "known_hosts")
		}
		cb, err := knownhosts.New(path)
		if err != nil {
			return nil, fmt.Errorf("known hosts %s: %w (use --insecure-host-key only for lab nodes)", path, err)
		}
		hostKey = cb
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	c, err := ssh.Dial("tcp", t.addr(), &ssh.ClientConfig{User: t.User, Auth: auths, HostKeyCallback: hostKey, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("ssh %s@%s: %w", t.User, t.addr(), err)
	}
	return c, nil
}

// output runs cmd on the node and returns its standard output.
func output(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	b, err := s.Output(cmd)
	return string(b), err
}
