package registry

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
)

// localImage is an image in containers/storage with what publish needs.
type localImage struct {
	img    *storage.Image
	ref    types.ImageReference
	name   string // recipe name
	labels map[string]string
	layers []types.BlobInfo
	config types.BlobInfo
}

// findLocal resolves arg (an image ID, a full name, or a recipe name such as
// "compute-base", meaning imgctl/compute-base:latest) in the store.
func (c *Client) findLocal(ctx context.Context, arg string) (*localImage, error) {
	if c.opts.Storage == nil {
		return nil, errors.New("no container storage")
	}
	candidates := []string{arg}
	if !strings.Contains(arg, ":") && !strings.Contains(arg, "@") {
		candidates = append(candidates, arg+":latest")
		if !strings.Contains(arg, "/") {
			candidates = append(candidates, "imgctl/"+arg+":latest")
		}
	}
	var img *storage.Image
	for _, cand := range candidates {
		for _, n := range []string{cand, "localhost/" + cand, "docker.io/" + cand, "docker.io/library/" + cand} {
			if i, err := c.opts.Storage.Image(n); err == nil {
				img = i
				break
			}
		}
		if img != nil {
			break
		}
	}
	if img == nil {
		return nil, fmt.Errorf("image %q not found in container storage %s", arg, c.opts.Storage.GraphRoot())
	}
	ref, err := istorage.Transport.NewStoreReference(c.opts.Storage, nil, img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	im, err := ref.NewImage(ctx, c.systemContext())
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", arg, err)
	}
	defer im.Close()
	info, err := im.Inspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", arg, err)
	}
	li := &localImage{img: img, ref: ref, labels: info.Labels, layers: im.LayerInfos(), config: im.ConfigInfo()}
	li.name = info.Labels[images.LabelRecipe]
	if li.name == "" && len(img.Names) > 0 {
		n := img.Names[0]
		if i := strings.LastIndexAny(n, ":@"); i > strings.LastIndex(n, "/") {
			n = n[:i]
		}
		li.name = path.Base(n)
	}
	if li.name == "" {
		return nil, fmt.Errorf("image %s has no name: tag it or label it %s", arg, images.LabelRecipe)
	}
	return li, nil
}

// digests are the ways a build may have recorded this image's digest in an
// artifact manifest: the stored manifest digest(s) or the image ID.
func (li *localImage) digests() map[string]bool {
	m := map[string]bool{"sha256:" + li.img.ID: true}
	if li.img.Digest != "" {
		m[li.img.Digest.String()] = true
	}
	for _, d := range li.img.Digests {
		m[d.String()] = true
	}
	return m
}

// findSet returns the artifact set built from li, or nil when there is none.
func (c *Client) findSet(ctx context.Context, li *localImage) (*images.Entry, error) {
	if c.opts.Artifacts == nil {
		return nil, nil
	}
	entries, err := c.opts.Artifacts.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	want := li.digests()
	for i := range entries {
		if want[entries[i].Manifest.ImageDigest] {
			return &entries[i], nil
		}
	}
	return nil, nil
}
