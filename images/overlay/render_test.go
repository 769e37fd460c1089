package overlay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	unix.Chmod(path, uint32(mode.Perm())|setuidBits(mode))
}

// listing runs the real cpio tool over an uncompressed archive.
func listing(t *testing.T, archive []byte) string {
	t.Helper()
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	return string(out)
}

func TestRenderArchive(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs cpio")
	}
	image, site := t.TempDir(), t.TempDir()
	write(t, filepath.Join(image, "etc/hostname.tmpl"), "{{ .Hostname }}\n", 0o644)
	write(t, filepath.Join(image, "etc/motd"), "from the image\n", 0o644)
	write(t, filepath.Join(site, "etc/motd"), "from the site\n", 0o644) // later dir wins
	write(t, filepath.Join(site, "root/.ssh/authorized_keys.tmpl"), "{{ range .SSHAuthorizedKeys }}{{ . }}\n{{ end }}", 0o600)
	write(t, filepath.Join(site, "etc/slurm/slurm.conf.tmpl"), "ClusterName={{ index .Vars \"cluster\" }}\nNodeAddr={{ .IP }}\n", 0o644)
	write(t, filepath.Join(site, "usr/local/bin/helper"), "#!/bin/sh\n", 0o755|os.ModeSetuid)
	os.Symlink("/etc/motd", filepath.Join(site, "etc/motd.link"))
	devOK := os.Geteuid() == 0 && unix.Mknod(filepath.Join(site, "etc/null-dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil

	data := Data{Node: "nid001", IP: "10.0.0.1", Vars: map[string]string{"cluster": "tiny"}, SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA admin"}}
	var buf bytes.Buffer
	if err := Render(context.Background(), []string{image, site, filepath.Join(site, "missing")}, data, &buf, "none"); err != nil {
		t.Fatal(err)
	}
	list := listing(t, buf.Bytes())
	for _, want := range []string{
		"imgctl-overlay/etc/hostname", "imgctl-overlay/etc/slurm/slurm.conf",
		"-rwsr-xr-x", "imgctl-overlay/usr/local/bin/helper",
		"imgctl-overlay/etc/motd.link -> /etc/motd",
		"-rw-------", "imgctl-overlay/root/.ssh/authorized_keys",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, list)
		}
	}
	if devOK && (!strings.Contains(list, "crw") || !strings.Contains(list, "1,   3")) {
		t.Errorf("device node lost its type or numbers:\n%s", list)
	}
	// Extract and check rendered content.
	dest := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dest, bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	for file, want := range map[string]string{
		"etc/hostname":              "nid001\n",
		"etc/motd":                  "from the site\n",
		"etc/slurm/slurm.conf":      "ClusterName=tiny\nNodeAddr=10.0.0.1\n",
		"root/.ssh/authorized_keys": "ssh-ed25519 AAAA admin\n",
	} {
		got, err := os.ReadFile(filepath.Join(dest, Prefix, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", file, got, err, want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []string
	}{
		{"parse error names file and line", "etc/a.conf.tmpl", "line one\n{{ .Hostname \n", []string{"a.conf.tmpl:2", "overlay template"}},
		{"unknown field names file and line", "etc/b.conf.tmpl", "ok\nok\n{{ .NoSuchField }}\n", []string{"b.conf.tmpl:3", "NoSuchField"}},
		{"missing var", "etc/c.conf.tmpl", "{{ .Vars.nope }}\n", []string{"c.conf.tmpl:1", "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, tt.file), tt.content, 0o644)
			err := Render(context.Background(), []string{dir}, Data{Node: "n1"}, &bytes.Buffer{}, "zstd")
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRenderCompressions(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "etc/x"), "x", 0o644)
	for _, c := range []string{"zstd", "gzip", "none"} {
		t.Run(c, func(t *testing.T) {
			if err := Render(context.Background(), []string{dir}, Data{Node: "n1"}, &bytes.Buffer{}, c); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := Render(context.Background(), []string{dir}, Data{Node: "n1"}, &bytes.Buffer{}, "bzip9"); err == nil {
		t.Error("unknown compression accepted")
	}
}

func setuidBits(m os.FileMode) uint32 {
	if m&os.ModeSetuid != 0 {
		return unix.S_ISUID
	}
	return 0
}

// TestRenderBuiltins: with no template directory at all a node still gets
// its hostname and root's authorized keys; a template of the same path wins.
func TestRenderBuiltins(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs cpio")
	}
	custom := t.TempDir()
	write(t, filepath.Join(custom, "etc/hostname.tmpl"), "{{ .Hostname }}.site\n", 0o644)
	tests := []struct {
		name  string
		dirs  []string
		keys  []string
		files map[string]string // path → content; "" = must be absent
	}{
		{"bare", nil, nil, map[string]string{"etc/hostname": "nid007\n", "root/.ssh/authorized_keys": ""}},
		{"keys", nil, []string{"ssh-ed25519 AAAA a", "ssh-rsa BBBB b"},
			map[string]string{"etc/hostname": "nid007\n", "root/.ssh/authorized_keys": "ssh-ed25519 AAAA a\nssh-rsa BBBB b\n"}},
		{"template wins", []string{custom}, nil, map[string]string{"etc/hostname": "nid007.site\n"}},
		{"host keys", nil, nil, map[string]string{"etc/ssh/ssh_host_ed25519_key": "PRIVATE\n", "etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 PUB root@nid007\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			data := Data{Node: "nid007", SSHAuthorizedKeys: tt.keys}
			if tt.name == "host keys" {
				data.SSHHostKeys = []HostKey{{Type: "ed25519", Private: []byte("PRIVATE\n"), Public: []byte("ssh-ed25519 PUB root@nid007\n")}}
			}
			if err := Render(context.Background(), tt.dirs, data, &buf, "none"); err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames")
			cmd.Dir, cmd.Stdin = dest, bytes.NewReader(buf.Bytes())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cpio -id: %v\n%s", err, out)
			}
			for file, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(dest, Prefix, file))
				if want == "" {
					if err == nil {
						t.Errorf("%s present: %q", file, got)
					}
					continue
				}
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", file, got, err, want)
				}
			}
			for path, perm := range map[string]os.FileMode{"root/.ssh": 0o700, "etc/ssh/ssh_host_ed25519_key": 0o600} {
				if _, ok := tt.files[path]; !ok && !(path == "root/.ssh" && len(tt.keys) > 0) {
					continue
				}
				st, err := os.Stat(filepath.Join(dest, Prefix, path))
				if err != nil {
					t.Errorf("%s: %v", path, err)
				} else if st.Mode().Perm() != perm {
					t.Errorf("%s: mode %o, want %o", path, st.Mode().Perm(), perm)
				}
			}
		})
	}
}
