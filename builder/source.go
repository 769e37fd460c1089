package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// storeSource is an image in containers/storage seen as an images.Source.
type storeSource struct {
	store  storage.Store
	img    *storage.Image
	ref    string
	labels map[string]string
	log    *slog.Logger
}

// Source returns the image ref (a name such as imgctl/compute-base:latest or an
// image ID) in store as an images.Source, for flattening into boot artifacts.
func Source(ctx context.Context, store storage.Store, ref string, log *slog.Logger) (images.Source, error) {
	img, err := LookupImage(store, ref)
	if err != nil {
		return nil, err
	}
	return &storeSource{store: store, img: img, ref: ref, labels: imageLabels(store, img), log: logging.OrDiscard(log)}, nil
}

// LookupImage finds ref in the store: as given, then under the imgctl/ prefix
// with :latest, then as localhost/… (how short names are stored).
func LookupImage(store storage.Store, ref string) (*storage.Image, error) {
	candidates := []string{ref}
	if !strings.Contains(ref, "/") {
		candidates = append(candidates, ImagePrefix+ref)
	}
	var tried []string
	for _, c := range candidates {
		for _, n := range []string{c, withTag(c), LocalName(c), "docker.io/" + withTag(c)} {
			if img, err := store.Image(n); err == nil {
				return img, nil
			}
			tried = append(tried, n)
		}
	}
	return nil, fmt.Errorf("image %s: not found in storage (tried %s)", ref, strings.Join(dedupe(tried), ", "))
}

// LocalName is how imgctl stores a short image name: under localhost/, the
// registry name containers tools use for images that were never pulled, with
// :latest when no tag is given.
func LocalName(ref string) string {
	if first, _, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return withTag(ref)
	}
	return "localhost/" + withTag(ref)
}

func withTag(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if strings.Contains(last, ":") || strings.Contains(last, "@") {
		return ref
	}
	return ref + ":latest"
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Name is the recipe name from the image's label, else the repository name.
func (s *storeSource) Name() string {
	if n := s.labels[images.LabelRecipe]; n != "" {
		return n
	}
	for _, n := range s.img.Names {
		n = n[strings.LastIndex(n, "/")+1:]
		if i := strings.IndexAny(n, ":@"); i > 0 {
			n = n[:i]
		}
		return n
	}
	return s.img.ID[:12]
}

func (s *storeSource) Ref() string               { return s.ref }
func (s *storeSource) Digest() string            { return "sha256:" + s.img.ID }
func (s *storeSource) Labels() map[string]string { return s.labels }

// Mount mounts the image's layers read-only.
func (s *storeSource) Mount(ctx context.Context) (string, func() error, error) {
	root, err := s.store.MountImage(s.img.ID, []string{"ro"}, "")
	if err != nil {
		return "", nil, fmt.Errorf("mount image %s: %w", s.ref, err)
	}
	return root, func() error {
		_, err := s.store.UnmountImage(s.img.ID, false)
		return err
	}, nil
}

// Run runs argv in a throwaway working container made from the image.
func (s *storeSource) Run(ctx context.Context, argv []string, binds []images.Bind, out io.Writer) error {
	bld, err := NewWorkingContainer(ctx, s.store, s.img.ID, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", s.ref, err)
	}
	defer func() {
		if err := bld.Delete(); err != nil {
			s.log.Warn("remove working container", "container", bld.ContainerID, "err", err)
		}
	}()
	var mounts []specs.Mount
	for _, b := range binds {
		opts := []string{"bind", "rw"}
		if b.ReadOnly {
			opts = []string{"bind", "ro"}
		}
		mounts = append(mounts, specs.Mount{Source: b.Host, Destination: b.Container, Type: "bind", Options: opts})
	}
	tail := newTail(20)
	w := io.MultiWriter(out, tail)
	err = bld.Run(argv, buildah.RunOptions{
		Isolation: define.IsolationChroot,
		Env:       []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"},
		Mounts:    mounts,
		Stdout:    w,
		Stderr:    w,
		Stdin:     strings.NewReader(""),
		Quiet:     true,
	})
	if err != nil {
		return &CommandError{Recipe: s.ref, Command: strings.Join(argv, " "), Status: err.Error(), Tail: tail.String()}
	}
	return ctx.Err()
}
