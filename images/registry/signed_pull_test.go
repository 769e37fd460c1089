package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestPullRefusesForgeries publishes sets a site must not accept.
func TestPullRefusesForgeries(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "docker-registry")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := startRegistry(t)
	keys := t.TempDir()
	_, pub := genKey(t, keys, "site.key")
	otherPriv, _ := genKey(t, keys, "attacker.key")

	// Someone with registry write access but not the site key re-signs.
	src, _ := newSite(t, ctx)
	img := buildImage(t, ctx, src.store, "forged", map[string]string{images.LabelRecipe: "forged"})
	writeSet(t, ctx, src.state, "forged", imageDigest(img))
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "forged", Registry: reg.Host + "/lab", SignKey: otherPriv}); err != nil {
		t.Fatal(err)
	}
	dst, _ := newSite(t, ctx)
	_, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/lab/forged", VerifyKey: pub})
	if !errors.Is(err, registry.ErrSignature) {
		t.Fatalf("pull of a set signed by another key: %v, want ErrSignature", err)
	}
	assertNoSets(t, ctx, dst.state)

	// Unsigned publish, pull demanding a signature.
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "forged", Registry: reg.Host + "/unsigned"}); err != nil {
		t.Fatal(err)
	}
	_, err = dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/unsigned/forged", VerifyKey: pub})
	if !errors.Is(err, registry.ErrSignature) {
		t.Fatalf("pull of an unsigned set with a key: %v, want ErrSignature", err)
	}
	assertNoSets(t, ctx, dst.state)

	// A manifest whose kernel is a file elsewhere on the pulling host, with
	// that file's real sha256: Entry.Verify alone would accept it.
	host := "/etc/os-release"
	hb, err := os.ReadFile(host)
	if err != nil {
		t.Skipf("needs %s: %v", host, err)
	}
	evilImg := buildImage(t, ctx, src.store, "evil", map[string]string{images.LabelRecipe: "evil"})
	evil := writeSet(t, ctx, src.state, "evil", imageDigest(evilImg))
	sum := sha256.Sum256(hb)
	evil.Manifest.Artifacts[images.Kernel] = images.Artifact{File: strings.Repeat("../", 16) + host[1:], Size: int64(len(hb)), SHA256: hex.EncodeToString(sum[:])}
	mb, _ := json.Marshal(evil.Manifest)
	if err := os.WriteFile(filepath.Join(evil.Dir, images.ManifestFile), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	registry.TrustSets(src.client) // publish would refuse it; the registry is where the attacker writes
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "evil", Registry: reg.Host + "/lab"}); err != nil {
		t.Fatal(err)
	}
	_, err = dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/lab/evil"})
	var ve *registry.VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "not a file of the set") {
		t.Fatalf("pull of a set pointing outside itself: %v, want a VerifyError", err)
	}
	assertNoSets(t, ctx, dst.state)

	// An image without boot artifacts (a non-bootable parent) travels alone.
	buildImage(t, ctx, src.store, "parent", map[string]string{images.LabelRecipe: "parent"})
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "parent", Registry: reg.Host + "/lab"}); err != nil {
		t.Fatal(err)
	}
	res, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/lab/parent:latest"})
	if err != nil || res.Artifacts != nil || res.ImageID == "" {
		t.Fatalf("pull of an image without artifacts: %+v, %v", res, err)
	}
}

func assertNoSets(t *testing.T, ctx context.Context, state string) {
	t.Helper()
	l, err := images.NewStore(state).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 0 {
		t.Errorf("a refused pull installed %d sets", len(l))
	}
	// Nothing staged is left behind either.
	var left []string
	filepath.Walk(filepath.Join(state, "artifacts"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	sort.Strings(left)
	if len(left) != 0 {
		t.Errorf("files left after a refused pull: %v", left)
	}
}
