package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestPullChecksSetManifest publishes sets whose blobs are intact but whose
// set manifest lies about them: pull hashes each file once as it arrives and
// must still catch every lie.
func TestPullChecksSetManifest(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "docker-registry")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	reg := startRegistry(t)
	src, mk := newSite(t, ctx)
	honest := mk()
	registry.TrustSets(src.client)
	flip := func(hex string) string {
		if hex[0] == '0' {
			return "1" + hex[1:]
		}
		return "0" + hex[1:]
	}
	tests := []struct {
		name, want string
		lie        func(m *images.Manifest)
	}{
		{"root piece hash", "piece hashes differ", func(m *images.Manifest) {
			m.Root.Pieces[len(m.Root.Pieces)-1] = flip(m.Root.Pieces[len(m.Root.Pieces)-1])
		}},
		{"kernel sha256", "set manifest says", func(m *images.Manifest) {
			a := m.Artifacts[images.Kernel]
			a.SHA256 = flip(a.SHA256)
			m.Artifacts[images.Kernel] = a
		}},
		{"initramfs and root sha256", "set manifest says", func(m *images.Manifest) {
			for _, k := range []string{images.Initramfs, images.RootFS} {
				a := m.Artifacts[k]
				a.SHA256 = flip(a.SHA256)
				m.Artifacts[k] = a
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "liar" + string(rune('a'+i))
			img := buildImage(t, ctx, src.store, name, map[string]string{images.LabelRecipe: name})
			set := writeSet(t, ctx, src.state, name, imageDigest(img))
			tt.lie(set.Manifest)
			mb, _ := json.Marshal(set.Manifest)
			if err := os.WriteFile(filepath.Join(set.Dir, images.ManifestFile), mb, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := honest.Publish(ctx, registry.PublishRequest{Image: name, Registry: reg.Host + "/lab"})
			if err == nil || !strings.Contains(err.Error(), "does not match its manifest") {
				t.Fatalf("publish of a lying set: %v, want a refusal", err)
			}
			// The lie reaches the registry anyway (someone with write access).
			if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: name, Registry: reg.Host + "/lab"}); err != nil {
				t.Fatal(err)
			}
			dst, _ := newSite(t, ctx)
			_, err = dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/lab/" + name})
			var ve *registry.VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("pull: %v, want a VerifyError saying %q", err, tt.want)
			}
			assertNoSets(t, ctx, dst.state)
		})
	}
}
