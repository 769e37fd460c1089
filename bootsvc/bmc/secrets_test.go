package bmc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	body := []byte("nid001: {user: root, password: pw-node}\ncompute: {password: pw-group}\n")
	tests := []struct {
		name    string
		mode    os.FileMode
		lookup  []string
		want    Target
		wantErr string
	}{
		{"node wins", 0o600, []string{"nid001", "compute"}, Target{User: "root", Password: "pw-node"}, ""},
		{"group keeps inventory user", 0o600, []string{"nid002", "compute"}, Target{User: "inv", Password: "pw-group"}, ""},
		{"unlisted", 0o400, []string{"nid003"}, Target{User: "inv"}, ""},
		{"group-readable refused", 0o640, nil, Target{}, "mode 0640, want 0600"},
		{"world-readable refused", 0o644, nil, Target{}, "mode 0644, want 0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(p, body, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			s, err := LoadSecrets(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := Target{User: "inv"}
			s.Apply(&got, tt.lookup...)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("target (-want +got):\n%s", d)
			}
		})
	}
}
