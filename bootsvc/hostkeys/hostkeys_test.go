package hostkeys

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGetCreatesOnceAndKeeps(t *testing.T) {
	s := NewStore(t.TempDir())
	if _, err := s.Public("nid001"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Public before Get: %v, want not exist", err)
	}
	// Concurrent first requests (a node fetching its overlay twice) agree.
	keys := make([]Key, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := s.Get("nid001")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k.Private, keys[0].Private) {
			t.Fatal("concurrent Gets made different keys")
		}
	}
	signer, err := ssh.ParsePrivateKey(keys[0].Private)
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(keys[0].Public)
	if err != nil || comment != "root@nid001" || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("public key %q does not match the private key (%v)", keys[0].Public, err)
	}
	st, err := os.Stat(filepath.Join(s.dir, "nid001", "ssh_host_ed25519_key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v, want mode 0600", st.Mode(), err)
	}
	// A new store over the same directory (a service restart) keeps the key.
	again, err := NewStore(s.dir).Get("nid001")
	if err != nil || !bytes.Equal(again.Private, keys[0].Private) {
		t.Fatalf("key changed across stores: %v", err)
	}
	if other, _ := s.Get("nid002"); bytes.Equal(other.Private, keys[0].Private) {
		t.Fatal("two nodes share a key")
	}
	// OpenSSH itself accepts the private key file.
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command("ssh-keygen", "-y", "-f", filepath.Join(s.dir, "nid001", "ssh_host_ed25519_key")).Output()
		if err != nil || !bytes.HasPrefix(keys[0].Public, bytes.TrimSpace(out)) {
			t.Errorf("ssh-keygen -y = %q (%v), want the prefix of %q", out, err, keys[0].Public)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir)
	for _, name := range []string{"", "../etc", "a/b", ".hidden"} {
		if _, err := s.Get(name); err == nil {
			t.Errorf("Get(%q) accepted", name)
		}
	}
	os.MkdirAll(filepath.Join(dir, "nid009"), 0o700)
	os.WriteFile(filepath.Join(dir, "nid009", "ssh_host_ed25519_key"), []byte("garbage"), 0o600)
	os.WriteFile(filepath.Join(dir, "nid009", "ssh_host_ed25519_key.pub"), []byte("garbage"), 0o644)
	if _, err := s.Get("nid009"); err == nil {
		t.Error("a corrupt key file was handed out")
	}
}
