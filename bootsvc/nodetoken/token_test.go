package nodetoken

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	tk, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %o", st.Mode().Perm())
	}
	tk2, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := tk.Make("nid001", "52:54:00:00:00:01", "10.43.0.11")
	macs := []string{"52:54:00:00:00:09", "52:54:00:00:00:01"}
	if m, err := tk2.Check(tok, "nid001", macs, "10.43.0.11"); err != nil || m != "52:54:00:00:00:01" {
		t.Errorf("reloaded secret: %q %v", m, err)
	}
	for _, tc := range []struct{ name, tok, node, ip string }{
		{"other node", tok, "nid002", "10.43.0.11"},
		{"other ip", tok, "nid001", "10.43.0.12"},
		{"other secret", NewTokens([]byte("0123456789abcdef")).Make("nid001", "52:54:00:00:00:01", "10.43.0.11"), "nid001", "10.43.0.11"},
		{"empty", "", "nid001", "10.43.0.11"},
		{"truncated", tok[:len(tok)-2], "nid001", "10.43.0.11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tk.Check(tc.tok, tc.node, macs, tc.ip); err == nil {
				t.Error("accepted")
			}
		})
	}
	os.Chmod(path, 0o644)
	if _, err := LoadSecret(path); err == nil {
		t.Error("world-readable secret accepted")
	}
}

func FuzzParseToken(f *testing.F) {
	tk := NewTokens([]byte("fuzz-secret-0123456789"))
	good := tk.Make("nid001", "52:54:00:00:00:01", "10.43.0.11")
	for _, s := range []string{good, "", "t1.", "t1.AAAA", "t2." + good[3:], good + "=", "t1.!!!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseToken(s)
		if err == nil && len(b) != 32 {
			t.Fatalf("parsed %d bytes", len(b))
		}
		if _, err := tk.Check(s, "nid001", []string{"52:54:00:00:00:01"}, "10.43.0.11"); err == nil && s != good {
			t.Fatalf("forged token %q accepted", s)
		}
	})
}
