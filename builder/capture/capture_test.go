package capture_test

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/builder/buildtest"
	"github.com/imgctl/imgctl/builder/capture"
	"github.com/imgctl/imgctl/builder/capture/capturetest"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/testenv"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

func TestCaptureFullAndDifferential(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	node := capturetest.Start(t, ctx)
	st := buildtest.Store(t)
	r := node.Root

	// Hand-tune the golden node.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(r, "usr/local/bin"), 0o755)
	os.MkdirAll(filepath.Join(r, "srv"), 0o755)
	must(os.WriteFile(filepath.Join(r, "etc/golden.conf"), []byte("tuned=yes\n"), 0o640))
	must(os.Lchown(filepath.Join(r, "etc/golden.conf"), 0, 42))
	must(os.Remove(filepath.Join(r, "etc/issue.net")))
	must(unix.Chmod(filepath.Join(r, "etc/motd"), 0o600))
	must(os.WriteFile(filepath.Join(r, "usr/local/bin/netd"), []byte("#!/bin/sh\n"), 0o755))
	must(exec.Command("setcap", "cap_net_raw+ep", filepath.Join(r, "usr/local/bin/netd")).Run())
	must(os.Link(filepath.Join(r, "usr/local/bin/netd"), filepath.Join(r, "usr/local/bin/netd-link")))
	must(unix.Mknod(filepath.Join(r, "srv/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.WriteFile(filepath.Join(r, "etc/ssh_host_should_not"), nil, 0o600))
	os.MkdirAll(filepath.Join(r, "etc/ssh"), 0o755)
	must(os.WriteFile(filepath.Join(r, "etc/ssh/ssh_host_ed25519_key"), []byte("secret"), 0o600))
	must(os.WriteFile(filepath.Join(r, "tmp/scratch"), []byte("x"), 0o644))

	target, _ := capture.ParseTarget("root@" + node.Addr)
	sshOpts := capture.SSHOptions{KeyFile: node.Key, KnownHosts: node.KnownHosts}
	name := fmt.Sprintf("imgctl-test-golden-%d", time.Now().UnixNano()%100000)

	// Full capture.
	full, err := capture.Capture(ctx, st, target, capture.Options{Name: name, RemoteRoot: r, SSH: sshOpts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full capture: %+v", full)
	img, err := builder.LookupImage(st, "imgctl/"+name)
	if err != nil {
		t.Fatal(err)
	}
	if l := builder.ImageLabels(st, img); l[images.LabelRecipe] != name || l["org.imgctl.captured-from"] != node.Addr {
		t.Errorf("labels %v", l)
	}
	src, _ := builder.Source(ctx, st, img.ID, nil)
	mnt, unmount, err := src.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks := func() {
		var a, b unix.Stat_t
		unix.Lstat(filepath.Join(mnt, "usr/local/bin/netd"), &a)
		unix.Lstat(filepath.Join(mnt, "usr/local/bin/netd-link"), &b)
		if a.Ino != b.Ino {
			t.Error("hard link not kept")
		}
		if _, err := unix.Lgetxattr(filepath.Join(mnt, "usr/local/bin/netd"), "security.capability", make([]byte, 64)); err != nil {
			t.Errorf("file capability lost: %v", err)
		}
		var d unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, "srv/null"), &d); err != nil || d.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(d.Rdev) != 1 || unix.Minor(d.Rdev) != 3 {
			t.Errorf("device node: %v %+v", err, d)
		}
		var g unix.Stat_t
		if unix.Lstat(filepath.Join(mnt, "etc/golden.conf"), &g); g.Gid != 42 || g.Mode&0o777 != 0o640 {
			t.Errorf("owner/mode of golden.conf: gid %d mode %o", g.Gid, g.Mode&0o777)
		}
		for _, gone := range []string{"etc/issue.net", "etc/ssh/ssh_host_ed25519_key", "tmp/scratch"} {
			if _, err := os.Lstat(filepath.Join(mnt, gone)); err == nil {
				t.Errorf("%s should not be in the captured image", gone)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(mnt, "etc/machine-id")); len(b) != 0 {
			t.Errorf("machine-id not emptied: %q", b)
		}
	}
	checks()
	unmount()

	// Differential capture on the tiny parent: only the changes and a whiteout.
	diffName := name + "-diff"
	diff, err := capture.Capture(ctx, st, target, capture.Options{Name: diffName, Parent: "imgctl/boot-tiny", RemoteRoot: r, SSH: sshOpts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("differential capture: %+v", diff)
	if diff.Removed < 1 || diff.Unchanged < 100 || diff.Added < 3 {
		t.Errorf("counts: %+v", diff)
	}
	dimg, _ := st.Image(diff.ImageID)
	layer, _ := st.Layer(dimg.TopLayer)
	rc, err := st.Diff(layer.Parent, layer.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimPrefix(h.Name, "./"))
	}
	rc.Close()
	list := strings.Join(names, "\n")
	for _, want := range []string{"etc/golden.conf", "etc/motd", "usr/local/bin/netd", "etc/.wh.issue.net", "srv/null"} {
		if !strings.Contains(list, want) {
			t.Errorf("differential layer lacks %s:\n%s", want, list)
		}
	}
	for _, unwanted := range []string{"usr/bin/bash", "etc/passwd"} {
		if strings.Contains(list, unwanted) {
			t.Errorf("differential layer holds unchanged %s", unwanted)
		}
	}
	src2, _ := builder.Source(ctx, st, diff.ImageID, nil)
	mnt, unmount, err = src2.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks()
	unmount()
	if src2.Labels()[images.LabelBoot] == "" {
		t.Error("the differential capture lost the parent's boot label")
	}

	// Flatten the captured image into boot artifacts and list its root image.
	state := t.TempDir()
	e, err := artifacts.Build(ctx, src2, images.NewStore(state), artifacts.Options{StateDir: testenv.StateDir(t)})
	if err != nil {
		t.Fatalf("flatten the captured image: %v", err)
	}
	listing, err := exec.CommandContext(ctx, "unsquashfs", "-l", filepath.Join(e.Dir, e.Manifest.Artifacts[images.RootFS].File)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(listing), "squashfs-root/etc/golden.conf") || strings.Contains(string(listing), "squashfs-root/etc/issue.net\n") {
		t.Errorf("flattened root image does not reflect the capture")
	}

	// A host key that does not match known_hosts is refused.
	bad := filepath.Join(t.TempDir(), "known_hosts")
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	op, _ := ssh.NewPublicKey(other)
	os.WriteFile(bad, []byte(node.Addr+" "+string(ssh.MarshalAuthorizedKey(op))), 0o600)
	_, err = capture.Capture(ctx, st, target, capture.Options{Name: name + "-bad", RemoteRoot: r, SSH: capture.SSHOptions{KeyFile: node.Key, KnownHosts: bad}})
	if err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("capture with a wrong known host key: %v, want a key mismatch", err)
	}

	// Cancelled mid-stream: no image, no working container left behind.
	before, _ := st.Containers()
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(300 * time.Millisecond); ccancel() }()
	_, err = capture.Capture(cctx, st, target, capture.Options{Name: name + "-cancel", RemoteRoot: r, SSH: sshOpts})
	if err == nil {
		t.Fatal("cancelled capture succeeded")
	}
	if _, err := builder.LookupImage(st, "imgctl/"+name+"-cancel"); err == nil {
		t.Error("cancelled capture left an image")
	}
	if after, _ := st.Containers(); len(after) != len(before) {
		t.Errorf("cancelled capture left %d working containers", len(after)-len(before))
	}
}
