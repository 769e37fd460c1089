package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/testenv"
)

// TestPublishPullBoot is the two-site workflow through the CLI: the build
// site publishes boot-tiny (image and boot artifacts) to a real registry
// (Debian's docker-registry on loopback); a second site with its own state
// directory and container storage pulls it, and a QEMU node boots from the
// pulled copy through that site's `imgctl serve`, running the published digest.
func TestPublishPullBoot(t *testing.T) {
	requireVM(t, "docker-registry", "skopeo")
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	set := bootArtifacts(t)
	reg := startDockerRegistry(t)
	repo := reg + "/e2e"

	buildSite := []string{"--storage-root", testenv.Storage(t).GraphRoot, "--storage-runroot", testenv.Storage(t).RunRoot,
		"--state", testenv.StateDir(t)}
	site := t.TempDir()
	pullSite := []string{"--storage-root", filepath.Join(site, "storage"), "--storage-runroot", filepath.Join(site, "run"),
		"--state", filepath.Join(site, "state")}

	run := func(args ...string) []byte {
		t.Helper()
		start := time.Now()
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("imgctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		t.Logf("imgctl %s: %.1fs", strings.Join(args[len(args)-3:], " "), time.Since(start).Seconds())
		return out
	}
	var pub struct {
		ImageDigest string `json:"image_digest"`
	}
	out := run(append(buildSite, "-o", "json", "publish", set.Manifest.Name, "--registry", repo, "--tag", "latest", "--tls-verify=false")...)
	if err := json.Unmarshal(out, &pub); err != nil {
		t.Fatalf("publish report %s: %v", out, err)
	}
	ref := repo + "/" + set.Manifest.Name + ":latest"
	if out, err := exec.CommandContext(ctx, "skopeo", "inspect", "--tls-verify=false", "docker://"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}

	run(append(pullSite, "-q", "pull", ref, "--tls-verify=false")...)
	run(append(pullSite, "-q", "artifacts", "verify", set.Manifest.Name)...)
	state := filepath.Join(site, "state")
	run("--state", state, "-q", "node", "add", "pull01", "--mac", "52:54:00:59:00:11", "--ip", "10.59.1.11", "--image", set.Manifest.Name, "--mode", "live")

	b := &bootNode{bin: bin, state: state, name: "pull01", mac: "52:54:00:59:00:11", ip: "10.59.1.11"}
	res, err := b.vmBoot(t, 6*time.Minute)
	if err != nil {
		t.Fatalf("boot from the pulled copy: %v\n%s", err, b.tails(t))
	}
	if !res.Booted || res.Hostname != "pull01" || res.Digest != set.Manifest.ImageDigest {
		t.Errorf("report %+v: want booted pull01 running %s", res, set.Manifest.ImageDigest)
	}
	if pub.ImageDigest != "" && pub.ImageDigest != set.Manifest.ImageDigest {
		t.Logf("publish reported image digest %s (manifest %s)", pub.ImageDigest, set.Manifest.ImageDigest)
	}
}

// startDockerRegistry runs Debian's docker-registry on a free loopback port
// with its storage in a temp dir, until the test ends; it returns host:port.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)), 0o644)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Logf("registry log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
	}
	t.Fatalf("docker-registry did not answer on %s", addr)
	return ""
}
