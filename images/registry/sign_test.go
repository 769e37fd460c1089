package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgctl/imgctl/images"
)

// smallSet installs a tiny but valid artifact set into a new state dir.
func smallSet(t *testing.T) *images.Entry {
	t.Helper()
	ctx := context.Background()
	s := images.NewStore(t.TempDir())
	dir, err := s.Stage("tiny", "sha256:1234")
	if err != nil {
		t.Fatal(err)
	}
	m := images.Manifest{Version: images.ManifestVersion, Name: "tiny", ImageDigest: "sha256:1234", Artifacts: map[string]images.Artifact{}, Root: images.RootImage{PieceSize: 1 << 10}}
	for kind, file := range map[string]string{images.Kernel: "vmlinuz", images.Initramfs: "initramfs.img", images.RootFS: "rootfs.squashfs"} {
		b := make([]byte, 3000)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(filepath.Join(dir, file))
		pieces, sum, err := images.HashPieces(ctx, f, m.Root.PieceSize)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts[kind] = images.Artifact{File: file, Size: 3000, SHA256: sum}
		if kind == images.RootFS {
			m.Root.Pieces = pieces
		}
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, images.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	writeOverlay(t, dir)
	e, err := s.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func signSet(t *testing.T, e *images.Entry, key ed25519.PrivateKey) {
	t.Helper()
	files, done, err := setFiles(context.Background(), e, true)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	sig, err := sign(Payload{Name: e.Manifest.Name, ImageDigest: "sha256:abcd", Files: filesMap(files)}, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSignature(e.Dir, sig); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name   string
		change func(t *testing.T, e *images.Entry)
		key    ed25519.PublicKey
		ok     bool
	}{
		{"signed set", func(*testing.T, *images.Entry) {}, pub, true},
		{"another key", func(*testing.T, *images.Entry) {}, otherPub, false},
		{"signed by another key", func(t *testing.T, e *images.Entry) { signSet(t, e, otherPriv) }, pub, false},
		{"unsigned", func(t *testing.T, e *images.Entry) { os.Remove(filepath.Join(e.Dir, signatureFile)) }, pub, false},
		{"extra file", func(t *testing.T, e *images.Entry) {
			os.WriteFile(filepath.Join(e.Dir, "evil.sh"), []byte("x"), 0o644)
		}, pub, false},
		{"changed overlay", func(t *testing.T, e *images.Entry) {
			os.WriteFile(filepath.Join(e.Dir, "overlay", "etc/motd.tmpl"), []byte("changed"), 0o644)
		}, pub, false},
		{"changed manifest", func(t *testing.T, e *images.Entry) {
			e.Manifest.Cmdline = "init=/bin/sh"
			b, _ := json.Marshal(e.Manifest)
			os.WriteFile(filepath.Join(e.Dir, images.ManifestFile), b, 0o644)
		}, pub, false},
		{"tampered signature file", func(t *testing.T, e *images.Entry) {
			p := filepath.Join(e.Dir, signatureFile)
			b, _ := os.ReadFile(p)
			var s Signature
			json.Unmarshal(b, &s)
			s.Signature[0] ^= 1
			b, _ = json.Marshal(s)
			os.WriteFile(p, b, 0o644)
		}, pub, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := smallSet(t)
			signSet(t, e, priv)
			tt.change(t, e)
			err := VerifySignature(context.Background(), e, tt.key)
			if tt.ok && err != nil {
				t.Fatalf("VerifySignature: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrSignature) {
				t.Fatalf("VerifySignature = %v, want ErrSignature", err)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	pub, err := GenerateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(p); err == nil {
		t.Fatal("GenerateKey overwrote a key")
	}
	priv, err := ReadPrivateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := ReadPublicKey(p + ".pub")
	if err != nil || !pub.Equal(pub2) || !pub.Equal(priv.Public()) {
		t.Fatalf("keys do not match: %v", err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode().Perm())
	}
	if _, err := ReadPublicKey(p); err == nil {
		t.Error("a private key was read as a public one")
	}
}
