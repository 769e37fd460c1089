package benchresult

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		figures any
		want    string
	}{
		{"map sorted and indented", map[string]any{"ratio_vs_base": 1.5, "clients": 50, "client": "tftp-hpa"},
			"{\n  \"client\": \"tftp-hpa\",\n  \"clients\": 50,\n  \"ratio_vs_base\": 1.5\n}\n"},
		{"nested", map[string]any{"live_phases_s": map[string]float64{"dhcp/lease": 2.5}},
			"{\n  \"live_phases_s\": {\n    \"dhcp/lease\": 2.5\n  }\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "results") // created by Write
			t.Setenv("IMGCTL_BENCH_DIR", dir)
			if err := Write("x.json", tc.figures); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "x.json"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("x.json (-want +got):\n%s", diff)
			}
			if fi, _ := os.Stat(filepath.Join(dir, "x.json")); fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi.Mode().Perm())
			}
		})
	}
}

func TestWriteUnencodable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("IMGCTL_BENCH_DIR", dir)
	if err := Write("bad.json", map[string]any{"c": make(chan int)}); err == nil {
		t.Fatal("unencodable figures accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.json")); !os.IsNotExist(err) {
		t.Errorf("bad.json left behind: %v", err)
	}
}

func TestDirDefault(t *testing.T) {
	t.Setenv("IMGCTL_BENCH_DIR", "")
	wd, _ := os.Getwd() // internal/benchresult in the source tree
	want := filepath.Join(wd, "..", "..", "bench", "results")
	if got := Dir(); filepath.Clean(got) != filepath.Clean(want) {
		t.Errorf("Dir() = %s, want %s", got, want)
	}
}
