package nodetoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/imgctl/imgctl/internal/atomicfile"
)

// tokenPrefix versions the token format so it can change without confusion.
const tokenPrefix = "t1."

// secretSize is the HMAC key length in bytes.
const secretSize = 32

// Tokens mints and checks per-node tokens: an HMAC over the node's name, MAC
// and IP. A token is opaque to nodes; only this server can make or check one.
type Tokens struct {
	secret []byte
}

// LoadSecret reads the HMAC secret from path, creating it (0600) when missing.
func LoadSecret(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, secretSize)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("token secret: %w", err)
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("token secret: %w", err)
		}
		return &Tokens{secret: b}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token secret %s: mode %o, want 0600 (readable by others)", path, st.Mode().Perm())
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("token secret %s: %d bytes, want at least 16", path, len(b))
	}
	return &Tokens{secret: b}, nil
}

// NewTokens uses secret directly (tests, benchmarks).
func NewTokens(secret []byte) *Tokens { return &Tokens{secret: append([]byte(nil), secret...)} }

func (t *Tokens) mac(name, mac, ip string) []byte {
	h := hmac.New(sha256.New, t.secret)
	// NUL separators: names, MACs and IPs never contain NUL, so fields can't run together.
	h.Write([]byte(name + "\x00" + strings.ToLower(mac) + "\x00" + ip))
	return h.Sum(nil)
}

// Make returns the token for node name booting from mac at ip.
func (t *Tokens) Make(name, mac, ip string) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(t.mac(name, mac, ip))
}

// parseToken checks a token's form and returns its HMAC bytes.
func parseToken(s string) ([]byte, error) {
	if !strings.HasPrefix(s, tokenPrefix) {
		return nil, errors.New("token: unknown format")
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(tokenPrefix):])
	if err != nil {
		return nil, errors.New("token: not base64url")
	}
	if len(b) != sha256.Size {
		return nil, fmt.Errorf("token: %d bytes, want %d", len(b), sha256.Size)
	}
	return b, nil
}

// Check reports whether token was made for name at ip from one of macs, and
// returns the MAC it was made for.
func (t *Tokens) Check(token, name string, macs []string, ip string) (string, error) {
	got, err := parseToken(token)
	if err != nil {
		return "", err
	}
	for _, m := range macs {
		if hmac.Equal(got, t.mac(name, m, ip)) {
			return strings.ToLower(m), nil
		}
	}
	return "", errors.New("token: not valid for this node and address")
}
