package registry

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestOverlayRoundTrip(t *testing.T) {
	set := t.TempDir()
	writeOverlay(t, set)
	os.Chmod(filepath.Join(set, "overlay/etc/slurm/slurm.conf.tmpl"), 0o640)
	first, err := packOverlay(filepath.Join(set, "overlay"))
	if err != nil || first == "" {
		t.Fatalf("pack: %q %v", first, err)
	}
	defer os.Remove(first)
	dst := filepath.Join(t.TempDir(), "overlay")
	if err := unpackOverlay(first, dst); err != nil {
		t.Fatal(err)
	}
	again, err := packOverlay(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(again)
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("pack(unpack(x)) differs from x: the digest would not survive a pull")
	}
	if st, err := os.Stat(filepath.Join(dst, "etc/slurm/slurm.conf.tmpl")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode not kept: %v %v", st.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "etc/motd.link")); err != nil || l != "motd" {
		t.Errorf("symlink: %q %v", l, err)
	}
	if empty, err := packOverlay(t.TempDir()); empty != "" || err != nil {
		t.Errorf("empty dir packed to %q (%v), want nothing", empty, err)
	}
}

// TestUnpackOverlayRefuses: a pulled tar is untrusted until unpacked; nothing
// in it may land outside the overlay directory.
func TestUnpackOverlayRefuses(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"absolute", []tar.Header{{Name: "/etc/escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"through a symlink", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "link/escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"device", []tar.Header{{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}}},
		{"hard link", []tar.Header{{Name: "hl", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.entries {
				h := h
				tw.WriteHeader(&h)
			}
			tw.Close()
			p := filepath.Join(t.TempDir(), overlayTar)
			os.WriteFile(p, buf.Bytes(), 0o644)
			if err := unpackOverlay(p, filepath.Join(t.TempDir(), "overlay")); err == nil {
				t.Error("unpacked")
			}
			if _, err := os.Stat(filepath.Join(outside, "escape")); err == nil {
				t.Fatal("a file was written outside the overlay directory")
			}
		})
	}
}
