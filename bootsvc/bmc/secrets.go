package bmc

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Credential is a BMC user and password from a secrets file.
type Credential struct {
	User     string `yaml:"user"`
	Password string `yaml:"password" json:"-"`
}

// Secrets maps a node or group name to its BMC credential.
type Secrets map[string]Credential

// LoadSecrets reads a YAML secrets file (name: {user, password}). It refuses a
// file other users can read, so passwords never sit in a world-readable file.
func LoadSecrets(path string) (Secrets, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bmc secrets: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("bmc secrets %s: mode %04o, want 0600 (chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bmc secrets: %w", err)
	}
	var s Secrets
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("bmc secrets %s: %w", path, err)
	}
	return s, nil
}

// Apply fills t's credential from the first of names (node first, then its
// groups) that the secrets file lists.
func (s Secrets) Apply(t *Target, names ...string) {
	for _, n := range names {
		if c, ok := s[n]; ok {
			if c.User != "" {
				t.User = c.User
			}
			t.Password = c.Password
			return
		}
	}
}
