package artifacts

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgctl/imgctl/internal/testenv"
)

// specialTree makes a root with every kind of file a root image must keep.
func specialTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/suid"), []byte("#!/bin/sh\n"), 0o755))
	must(unix.Chmod(filepath.Join(root, "usr/bin/suid"), 0o4755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/ping"), []byte("ping"), 0o755))
	must(exec.Command("setcap", "cap_net_raw+ep", filepath.Join(root, "usr/bin/ping")).Run())
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(os.WriteFile(filepath.Join(root, "usr/bin/a"), []byte("hard"), 0o644))
	must(os.Link(filepath.Join(root, "usr/bin/a"), filepath.Join(root, "usr/bin/b")))
	must(os.Symlink("../bin/a", filepath.Join(root, "usr/bin/link")))
	must(os.Symlink("/nonexistent/dangling", filepath.Join(root, "dangling")))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	must(unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
	// mknod and mkfifo honour the umask; set the modes the checks expect.
	must(unix.Chmod(filepath.Join(root, "dev/null"), 0o666))
	must(unix.Chmod(filepath.Join(root, "dev/sda"), 0o660))
	must(os.WriteFile(filepath.Join(root, "owned"), []byte("x"), 0o640))
	must(os.Lchown(filepath.Join(root, "owned"), 1234, 5678))
	must(unix.Lsetxattr(filepath.Join(root, "owned"), "user.imgctl", []byte("kept"), 0))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(filepath.Join(root, "owned"), old, old))
	return root
}

// describe lists every entry under root as "path mode uid:gid size/dev mtime xattrs".
func describe(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		st := info.Sys().(*syscall.Stat_t)
		extra := fmt.Sprint(st.Size)
		if info.IsDir() {
			extra = "dir"
		}
		if info.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
			extra = fmt.Sprintf("dev %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			extra = "-> " + target
		}
		var attrs []string
		for _, name := range []string{"user.imgctl", "security.capability"} {
			buf := make([]byte, 256)
			if n, err := unix.Lgetxattr(p, name, buf); err == nil {
				attrs = append(attrs, fmt.Sprintf("%s=%x", name, buf[:n]))
			}
		}
		mtime := info.ModTime().Unix()
		if info.IsDir() || rel == "." {
			mtime = 0 // directory mtimes change as the test creates entries
		}
		out = append(out, fmt.Sprintf("%s %o %d:%d %s nlink=%d mtime=%d %s", rel, st.Mode, st.Uid, st.Gid, extra, st.Nlink, mtime, strings.Join(attrs, ",")))
		return nil
	})
	sort.Strings(out)
	return out
}

func TestSquashfsKeepsEverything(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mksquashfs", "unsquashfs", "setcap")
	src := specialTree(t)
	img := filepath.Join(t.TempDir(), "rootfs.squashfs")
	argv, err := RootFSArgs("squashfs", "zstd", src, img, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := makeRootFS(ctx, argv, os.Stderr); err != nil {
		t.Fatal(err)
	}

	// unsquashfs's own listing: numeric owners, modes and targets.
	out, err := exec.CommandContext(ctx, "unsquashfs", "-lln", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	for _, want := range []string{"-rwsr-xr-x 0/0", "squashfs-root/usr/bin/suid", "drwxrwxrwt 0/0", "crw-rw-rw- 0/0", "1,  3", "brw-rw---- 0/0", "8,  0",
		"prw------- 0/0", "-rw-r----- 1234/5678", "2001-02-03", "squashfs-root/usr/bin/link -> ../bin/a", "squashfs-root/dangling -> /nonexistent/dangling"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("unsquashfs -lln lacks %q:\n%s", want, out)
		}
	}

	// The kernel's view: mount it and compare every entry with the source.
	mnt := t.TempDir()
	if out, err := exec.CommandContext(ctx, "mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -t squashfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() }) // frees the loop device it attached
	want, got := describe(t, src), describe(t, mnt)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("mounted squashfs differs from its source:\nsource:\n%s\nsquashfs:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

func TestRootFSArgs(t *testing.T) {
	tests := []struct {
		format, comp string
		want         string // substring of the joined command
		wantErr      bool
	}{
		{"", "", "mksquashfs /r /o -noappend", false},
		{"squashfs", "xz", "-comp xz", false},
		{"squashfs", "gzip", "-comp gzip", false},
		{"squashfs", "lz4", "-comp lz4 -Xhc", false},
		{"erofs", "", "mkfs.erofs -zlz4hc /o /r", false},
		{"erofs", "xz", "", true},
		{"ext4", "", "", true},
		{"squashfs", "brotli", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.comp, func(t *testing.T) {
			argv, err := RootFSArgs(tt.format, tt.comp, "/r", "/o", time.Unix(0, 0))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !strings.Contains(strings.Join(argv, " "), tt.want) {
				t.Errorf("%q lacks %q", argv, tt.want)
			}
		})
	}
}

func TestFindKernel(t *testing.T) {
	tests := []struct {
		name    string
		kernels []string
		want    string
		wantVer string
		wantErr string
	}{
		{"none", nil, "", "", "no kernel"},
		{"one", []string{"vmlinuz-6.1.0-1-amd64"}, "", "6.1.0-1-amd64", ""},
		{"two without choice", []string{"vmlinuz-6.1.0-1-amd64", "vmlinuz-6.1.0-2-amd64"}, "", "", "vmlinuz-6.1.0-1-amd64, vmlinuz-6.1.0-2-amd64"},
		{"two with choice", []string{"vmlinuz-6.1.0-1-amd64", "vmlinuz-6.1.0-2-amd64"}, "6.1.0-2-amd64", "6.1.0-2-amd64", ""},
		{"choice absent", []string{"vmlinuz-6.1.0-1-amd64"}, "vmlinuz-9", "", "boot.kernel vmlinuz-9 is not in the image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "boot"), 0o755)
			for _, k := range tt.kernels {
				os.WriteFile(filepath.Join(root, "boot", k), []byte("k"), 0o644)
			}
			_, ver, err := findKernel(root, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || ver != tt.wantVer {
				t.Fatalf("version %q, err %v; want %q", ver, err, tt.wantVer)
			}
		})
	}
}

func TestErofsKeepsEverything(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mkfs.erofs", "setcap")
	src := specialTree(t)
	img := filepath.Join(t.TempDir(), "rootfs.erofs")
	argv, err := RootFSArgs("erofs", "", src, img, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := makeRootFS(ctx, argv, os.Stderr); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if out, err := exec.CommandContext(ctx, "mount", "-t", "erofs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -t erofs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	want, got := describe(t, src), describe(t, mnt)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("mounted erofs differs from its source:\nsource:\n%s\nerofs:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}
