package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// ErrSignature is wrapped by every signature failure: missing, malformed, made
// with another key, or not matching the content.
var ErrSignature = errors.New("signature check failed")

// payloadType names the signed statement's schema.
const payloadType = "imgctl-signature-v1"

// Payload is the statement an imgctl signature signs (docs/registry.md): the
// image manifest digest in the registry, the artifact manifest digest, and the
// sha256 of every file of the set.
type Payload struct {
	Type            string            `json:"type"`
	Name            string            `json:"name"`
	ImageDigest     string            `json:"image_digest"`               // registry manifest digest of the OCI image
	ArtifactsDigest string            `json:"artifacts_digest,omitempty"` // digest of the artifact manifest; empty: image only
	Files           map[string]string `json:"files,omitempty"`            // file name -> "sha256:<hex>"

	sig *Signature // the signature this payload came from (pull)
}

// Signature is a signed Payload as stored in the registry and, after pull, as
// signature.json inside the artifact set.
type Signature struct {
	Payload   []byte `json:"payload"`   // the exact JSON bytes signed (base64 in JSON)
	Signature []byte `json:"signature"` // ed25519 signature of Payload (base64 in JSON)
	KeyID     string `json:"key_id"`    // KeyID of the signing key, to tell keys apart
}

// KeyID is a short, stable name for a public key: the first 16 hex digits of
// the sha256 of its raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// sign signs p with key.
func sign(p Payload, key ed25519.PrivateKey) (*Signature, error) {
	p.Type = payloadType
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &Signature{Payload: b, Signature: ed25519.Sign(key, b), KeyID: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// open checks s with pub and returns the signed payload.
func (s *Signature) open(pub ed25519.PublicKey) (*Payload, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key has %d bytes", ErrSignature, len(pub))
	}
	if !ed25519.Verify(pub, s.Payload, s.Signature) {
		return nil, fmt.Errorf("%w: signature (key %s) does not verify with key %s", ErrSignature, s.KeyID, KeyID(pub))
	}
	var p Payload
	if err := json.Unmarshal(s.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrSignature, err)
	}
	if p.Type != payloadType {
		return nil, fmt.Errorf("%w: payload type %q", ErrSignature, p.Type)
	}
	return &p, nil
}

// filesMap is the Payload.Files form of a set's files.
func filesMap(files []setFile) map[string]string {
	m := make(map[string]string, len(files))
	for _, f := range files {
		m[f.Name] = f.Digest.String()
	}
	return m
}

// VerifySignature checks that the installed set e carries a signature by pub
// that covers exactly its files (names and sha256). The boot service calls it
// before serving a set when a key is configured; pair it with e.Verify, which
// checks the file contents against the manifest. Kernel, initramfs and root
// image digests are taken from the signed manifest.json, which is hashed here,
// so this is cheap.
func VerifySignature(ctx context.Context, e *images.Entry, pub ed25519.PublicKey) error {
	b, err := os.ReadFile(filepath.Join(e.Dir, signatureFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w: the set is not signed", e.Dir, ErrSignature)
	}
	if err != nil {
		return err
	}
	var s Signature
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w: %v", signatureFile, ErrSignature, err)
	}
	p, err := s.open(pub)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Dir, err)
	}
	if p.Name != e.Manifest.Name {
		return fmt.Errorf("%s: %w: signed for image %q, set is %q", e.Dir, ErrSignature, p.Name, e.Manifest.Name)
	}
	files, done, err := setFiles(ctx, e, true)
	if err != nil {
		return err
	}
	defer done()
	return compareFiles(e.Dir, p.Files, filesMap(files))
}

// compareFiles reports every file that differs between the signed and the
// actual file lists.
func compareFiles(where string, signed, got map[string]string) error {
	var errs []error
	names := map[string]bool{}
	for n := range signed {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		switch s, g := signed[n], got[n]; {
		case s == "":
			errs = append(errs, fmt.Errorf("%s: %w: file %s is not signed", where, ErrSignature, n))
		case g == "":
			errs = append(errs, fmt.Errorf("%s: %w: signed file %s is missing", where, ErrSignature, n))
		case s != g:
			errs = append(errs, fmt.Errorf("%s: %w: file %s is %s, signed %s", where, ErrSignature, n, g, s))
		}
	}
	return errors.Join(errs...)
}

// GenerateKey writes a new ed25519 key pair: the private key to privPath
// (PKCS#8 PEM, mode 0600) and the public key to privPath+".pub" (PKIX PEM).
// It refuses to overwrite an existing private key.
func GenerateKey(privPath string) (ed25519.PublicKey, error) {
	if _, err := os.Stat(privPath); err == nil {
		return nil, fmt.Errorf("%s exists; not overwriting a key", privPath)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(privPath+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb}), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// ReadPrivateKey reads an ed25519 private key written by GenerateKey.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key (%T)", path, k)
	}
	return ek, nil
}

// ReadPublicKey reads an ed25519 public key written by GenerateKey.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key (%T)", path, k)
	}
	return ek, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("%s: no PEM %q block", path, typ)
	}
	return blk.Bytes, nil
}

// writeSignature stores s as signature.json in dir (atomic).
func writeSignature(dir string, s *Signature) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, signatureFile), append(b, '\n'), 0o644)
}
