// Package hostkeys keeps one SSH host key per node under the state directory,
// created on first use. Images carry no host keys (every node booting one
// would share them); the boot service puts each node's own key into its
// overlay, so a node keeps its identity across reboots and image changes and
// known_hosts entries stay valid.
package hostkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/imgctl/imgctl/internal/atomicfile"
)

// Key is one node's host key pair in OpenSSH's file formats.
type Key struct {
	Type    string // as in ssh_host_<Type>_key, e.g. ed25519
	Private []byte // OpenSSH private key (PEM)
	Public  []byte // authorized_keys form: "ssh-ed25519 AAAA… root@node\n"
}

// Store hands out node host keys from <dir>/<node>/. It is safe for
// concurrent use.
type Store struct {
	dir string
	mu  sync.Mutex
}

// nodeRE bounds node names to what can be a directory name.
var nodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewStore keeps keys under dir (typically <state>/hostkeys).
func NewStore(dir string) *Store { return &Store{dir: dir} }

// Get returns node's ed25519 host key, creating it when the node has none.
func (s *Store) Get(node string) (Key, error) {
	if !nodeRE.MatchString(node) {
		return Key{}, fmt.Errorf("host key: bad node name %q", node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	priv := filepath.Join(s.dir, node, "ssh_host_ed25519_key")
	k, err := read(priv)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	return create(priv, node)
}

// Public returns node's public key line, or fs.ErrNotExist when the node has
// not been given one yet (it has never booted).
func (s *Store) Public(node string) ([]byte, error) {
	if !nodeRE.MatchString(node) {
		return nil, fmt.Errorf("host key: bad node name %q", node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := read(filepath.Join(s.dir, node, "ssh_host_ed25519_key"))
	return k.Public, err
}

func read(priv string) (Key, error) {
	p, err := os.ReadFile(priv)
	if err != nil {
		return Key{}, err
	}
	pub, err := os.ReadFile(priv + ".pub")
	if err != nil {
		return Key{}, err
	}
	if _, err := ssh.ParseRawPrivateKey(p); err != nil {
		return Key{}, fmt.Errorf("host key %s: %w", priv, err)
	}
	return Key{Type: "ed25519", Private: p, Public: pub}, nil
}

func create(priv, node string) (Key, error) {
	k, err := Generate(node)
	if err != nil {
		return Key{}, err
	}
	return k, write(priv, node, k)
}

// Generate makes a new ed25519 host key pair for node, without storing it.
func Generate(node string) (Key, error) {
	pubKey, privKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	block, err := ssh.MarshalPrivateKey(privKey, "root@"+node)
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	sshPub, err := ssh.NewPublicKey(pubKey)
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	k := Key{Type: "ed25519", Private: pem.EncodeToMemory(block)}
	line := ssh.MarshalAuthorizedKey(sshPub) // ends in "\n"
	k.Public = append(line[:len(line)-1], []byte(" root@"+node+"\n")...)
	return k, nil
}

func write(priv, node string, k Key) error {
	if err := os.MkdirAll(filepath.Dir(priv), 0o700); err != nil {
		return fmt.Errorf("host key for %s: %w", node, err)
	}
	// Public first: a crash between the two leaves no private key without
	// its public half, and the next Get simply makes a new pair.
	if err := atomicfile.WriteFile(priv+".pub", k.Public, 0o644); err != nil {
		return fmt.Errorf("host key for %s: %w", node, err)
	}
	if err := atomicfile.WriteFile(priv, k.Private, 0o600); err != nil {
		return fmt.Errorf("host key for %s: %w", node, err)
	}
	return nil
}

// Put stores k as node's host key (an import), replacing any it had.
func (s *Store) Put(node string, k Key) error {
	if !nodeRE.MatchString(node) {
		return fmt.Errorf("host key: bad node name %q", node)
	}
	if _, err := ssh.ParseRawPrivateKey(k.Private); err != nil {
		return fmt.Errorf("host key for %s: %w", node, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return write(filepath.Join(s.dir, node, "ssh_host_ed25519_key"), node, k)
}

// Nodes lists the nodes that have a host key, sorted.
func (s *Store) Nodes() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("host keys: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(s.dir, e.Name(), "ssh_host_ed25519_key")); err == nil && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
