package registry_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/testenv"
)

// site is one machine's side: container storage, state dir, client.
type site struct {
	store  storage.Store
	state  string
	client *registry.Client
}

func newSite(t *testing.T, ctx context.Context) (*site, func() *registry.Client) {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, ctx, dir)
	s := &site{store: st, state: filepath.Join(dir, "state")}
	mk := func() *registry.Client {
		return registry.New(registry.Options{
			Storage: st, Artifacts: images.NewStore(s.state), TLSVerify: false,
			CacheDir: filepath.Join(s.state, "cache"), Progress: io.Discard, // exercises the progress bars without filling the log
			Retries: 1, RetryDelay: 50 * time.Millisecond,
		})
	}
	s.client = mk()
	return s, mk
}

func genKey(t *testing.T, dir, name string) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	p := filepath.Join(dir, name)
	if _, err := registry.GenerateKey(p); err != nil {
		t.Fatal(err)
	}
	priv, err := registry.ReadPrivateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := registry.ReadPublicKey(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// tree lists a set's files relative to the state dir with their content.
func tree(t *testing.T, state string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(state, "artifacts")
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPublishPull(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "docker-registry", "skopeo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	reg := startRegistry(t)
	keys := t.TempDir()
	priv, pub := genKey(t, keys, "site.key")
	_, otherPub := genKey(t, keys, "other.key")

	src, _ := newSite(t, ctx)
	spec, _ := json.Marshal(registry.PublishSpec{Registry: reg.Host + "/cluster", Tags: []string{"latest", "{{ .Date }}", "{{ .CacheKey }}"}})
	img := buildImage(t, ctx, src.store, "tiny", map[string]string{
		images.LabelRecipe: "tiny", images.LabelCacheKey: strings.Repeat("ab", 32),
		images.LabelPublish: string(spec), images.LabelBoot: `{"cmdline":"console=ttyS0"}`,
	})
	set := writeSet(t, ctx, src.state, "tiny", imageDigest(img))
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	wantTags := []string{"latest", "20261122", "abababababab"}

	t.Run("dry run pushes nothing", func(t *testing.T) {
		res, err := src.client.Publish(ctx, registry.PublishRequest{Image: "tiny", DryRun: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantTags, res.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		var names []string
		for _, b := range res.Blobs {
			if b.Kind == "artifact" {
				names = append(names, b.Name)
			}
		}
		if diff := cmp.Diff([]string{"initramfs.img", "manifest.json", "overlay.tar", "rootfs.squashfs", "vmlinuz"}, names); diff != "" {
			t.Errorf("artifact blobs (-want +got):\n%s", diff)
		}
		if n := reg.uploads.Load(); n != 0 {
			t.Errorf("dry run started %d uploads", n)
		}
	})

	var first *registry.PublishResult
	t.Run("publish", func(t *testing.T) {
		res, err := src.client.Publish(ctx, registry.PublishRequest{Image: "tiny", SignKey: priv, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		first = res
		if reg.uploads.Load() == 0 || res.UploadedArtifactBlobs != 6 { // 5 files + empty config
			t.Errorf("uploads %d, artifact blobs %d", reg.uploads.Load(), res.UploadedArtifactBlobs)
		}
		out, err := exec.CommandContext(ctx, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg.Host+"/cluster/tiny:20261122").Output()
		if err != nil {
			t.Fatalf("skopeo inspect: %v", err)
		}
		var info struct {
			Digest string
			Labels map[string]string
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatal(err)
		}
		if info.Digest != res.ImageDigest || info.Labels[images.LabelRecipe] != "tiny" {
			t.Errorf("skopeo sees digest %s labels %v, published %s", info.Digest, info.Labels, res.ImageDigest)
		}
		if err := registry.VerifySignature(ctx, set, pub); err != nil {
			t.Errorf("local set after signed publish: %v", err)
		}
	})
	if first == nil {
		t.FailNow()
	}

	t.Run("republish uploads no blob", func(t *testing.T) {
		before := reg.uploads.Load()
		res, err := src.client.Publish(ctx, registry.PublishRequest{Image: "tiny", SignKey: priv, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if n := reg.uploads.Load() - before; n != 0 || res.UploadedArtifactBlobs != 0 {
			t.Errorf("second publish started %d uploads (%d artifact blobs)", n, res.UploadedArtifactBlobs)
		}
		if res.ImageDigest != first.ImageDigest || res.ArtifactsDigest != first.ArtifactsDigest {
			t.Errorf("second publish digests %s/%s, first %s/%s", res.ImageDigest, res.ArtifactsDigest, first.ImageDigest, first.ArtifactsDigest)
		}
	})

	t.Run("pull into a fresh site", func(t *testing.T) {
		dst, _ := newSite(t, ctx)
		res, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/cluster/tiny:latest", VerifyKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		if res.ImageDigest != first.ImageDigest || !res.Verified || res.Artifacts == nil {
			t.Fatalf("pull result %+v", res)
		}
		if err := res.Artifacts.Verify(ctx); err != nil {
			t.Errorf("pulled set: %v", err)
		}
		if err := registry.VerifySignature(ctx, res.Artifacts, pub); err != nil {
			t.Errorf("pulled set signature: %v", err)
		}
		if err := registry.VerifySignature(ctx, res.Artifacts, otherPub); !errors.Is(err, registry.ErrSignature) {
			t.Errorf("pulled set with another key: %v, want ErrSignature", err)
		}
		// Same layout and bytes as the locally built set, so serve finds it
		// the same way.
		if diff := cmp.Diff(tree(t, src.state), tree(t, dst.state)); diff != "" {
			t.Errorf("pulled artifacts differ from the source (-src +pulled):\n%s", diff)
		}
		cur, err := images.NewStore(dst.state).Current("tiny")
		if err != nil || cur.Dir != res.Artifacts.Dir {
			t.Errorf("current tiny: %v %v", cur, err)
		}
		if _, err := dst.store.Image(res.ImageID); err != nil {
			t.Errorf("pulled image %s not in storage: %v", res.ImageID, err)
		}
	})

	t.Run("transient errors are retried", func(t *testing.T) {
		dst, _ := newSite(t, ctx)
		reg.fail.Store(1)
		defer reg.fail.Store(0)
		if _, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/cluster/tiny:latest"}); err != nil {
			t.Fatalf("pull with one 503: %v", err)
		}
		if n := reg.fail.Load(); n > 0 {
			t.Fatalf("the 503 was never served (%d left)", n)
		}
	})

	t.Run("wrong key is refused", func(t *testing.T) {
		dst, _ := newSite(t, ctx)
		_, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/cluster/tiny:latest", VerifyKey: otherPub})
		if !errors.Is(err, registry.ErrSignature) {
			t.Fatalf("pull with another key: %v, want ErrSignature", err)
		}
		assertNoSets(t, ctx, dst.state)
	})

	t.Run("tampered artifact is refused", func(t *testing.T) {
		rootDigest := "sha256:" + set.Manifest.Artifacts[images.RootFS].SHA256
		p := reg.BlobPath(rootDigest)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 0xff
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(p, orig, 0o644)
		dst, _ := newSite(t, ctx)
		_, err = dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/cluster/tiny:latest"})
		var ve *registry.VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("pull of a tampered set: %v, want a VerifyError", err)
		}
		t.Logf("refused as expected: %v", err)
		assertNoSets(t, ctx, dst.state)
	})

	t.Run("killed registry leaves nothing tagged, rerun completes", func(t *testing.T) {
		// A second image, so the kill happens while blobs are really uploaded.
		other, mkClient := newSite(t, ctx)
		img := buildImage(t, ctx, other.store, "killme", map[string]string{images.LabelRecipe: "killme", images.LabelBoot: "{}"})
		writeSet(t, ctx, other.state, "killme", imageDigest(img))
		reg.completed.Store(0)
		reg.killAfter.Store(1)
		_, err := other.client.Publish(ctx, registry.PublishRequest{Image: "killme", Registry: reg.Host + "/cluster", Tags: []string{"v1"}})
		reg.killAfter.Store(0)
		if err == nil {
			t.Fatal("publish succeeded although the registry was killed")
		}
		t.Logf("publish failed as expected: %v", err)
		reg.Start()
		if code, body := reg.Tags(ctx, "cluster/killme"); code == 200 {
			var tl struct{ Tags []string }
			if err := json.Unmarshal([]byte(body), &tl); err != nil || len(tl.Tags) != 0 {
				t.Fatalf("interrupted publish left tags: %s", body)
			}
		}
		res, err := mkClient().Publish(ctx, registry.PublishRequest{Image: "killme", Registry: reg.Host + "/cluster", Tags: []string{"v1"}})
		if err != nil {
			t.Fatalf("rerun: %v", err)
		}
		dst, _ := newSite(t, ctx)
		pr, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/cluster/killme:v1"})
		if err != nil {
			t.Fatalf("pull after rerun: %v", err)
		}
		if pr.ImageDigest != res.ImageDigest || pr.Artifacts == nil {
			t.Errorf("pull after rerun: %+v", pr)
		}
	})
}
