package builder

import (
	"context"
	"fmt"
	"io"

	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// NewWorkingContainer makes a buildah working container from the image from
// (an image ID, or "scratch") with imgctl's settings: chroot isolation, host
// network, the default capability set and ulimits this process may grant.
// Other producers of images (capture) build on it; the caller Deletes it.
func NewWorkingContainer(ctx context.Context, store storage.Store, from string, progress io.Writer) (*buildah.Builder, error) {
	if progress == nil {
		progress = io.Discard
	}
	bld, err := buildah.NewBuilder(ctx, store, buildah.BuilderOptions{
		FromImage:        from,
		Isolation:        define.IsolationChroot,
		CommonBuildOpts:  commonBuildOptions(),
		Capabilities:     capabilities,
		Format:           define.OCIv1ImageManifest,
		PullPolicy:       define.PullNever,
		NetworkInterface: hostNetwork{},
		ReportWriter:     progress,
	})
	if err != nil {
		return nil, fmt.Errorf("working container from %s: %w", from, err)
	}
	return bld, nil
}

// CommitAs commits bld as imgctl/<name>:<key[:12]> and tags it
// imgctl/<name>:latest, returning the image ID and both tags.
func CommitAs(ctx context.Context, store storage.Store, bld *buildah.Builder, name, key string) (string, []string, error) {
	latest, keyed := Tags(name, key)
	ref, err := is.Transport.ParseStoreReference(store, LocalName(keyed))
	if err != nil {
		return "", nil, err
	}
	id, _, _, err := bld.Commit(ctx, ref, buildah.CommitOptions{
		PreferredManifestType: define.OCIv1ImageManifest,
		SignaturePolicyPath:   policyPath(),
	})
	if err != nil {
		return "", nil, fmt.Errorf("commit %s: %w", keyed, err)
	}
	img, err := store.Image(id)
	if err != nil {
		return "", nil, err
	}
	b := &Builder{store: store}
	if err := b.tag(img, latest, keyed); err != nil {
		return "", nil, err
	}
	return id, []string{latest, keyed}, nil
}

// ImageLabels returns the config labels of an image in store.
func ImageLabels(store storage.Store, img *storage.Image) map[string]string {
	return imageLabels(store, img)
}
