package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
)

// destination opens repo for writing; with tag "" manifests are pushed by
// digest only (nothing is tagged).
func (c *Client) destination(ctx context.Context, repo reference.Named, tag string) (types.ImageDestination, error) {
	var ref types.ImageReference
	var err error
	if tag == "" {
		ref, err = docker.NewReferenceUnknownDigest(repo)
	} else {
		var t reference.NamedTagged
		if t, err = reference.WithTag(repo, tag); err == nil {
			ref, err = docker.NewReference(t)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reference %s:%s: %w", repo, tag, err)
	}
	return ref.NewImageDestination(ctx, c.systemContext())
}

// source opens repo at a tag or digest for reading.
func (c *Client) source(ctx context.Context, ref reference.Named) (types.ImageSource, error) {
	r, err := docker.NewReference(ref)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", ref, err)
	}
	return r.NewImageSource(ctx, c.systemContext())
}

// blob is one blob to push: where its bytes come from and what they are.
type blob struct {
	Name   string
	Digest digest.Digest
	Size   int64
	Data   []byte // small blobs in memory
	Path   string // or a file
}

func (b blob) open() (io.ReadCloser, error) {
	if b.Path == "" {
		return io.NopCloser(bytes.NewReader(b.Data)), nil
	}
	return os.Open(b.Path)
}

// pushBlobs uploads every blob the registry does not have yet (checked with a
// HEAD first), retrying transient failures, with a progress bar each. It
// returns how many blobs it uploaded.
func (c *Client) pushBlobs(ctx context.Context, dest types.ImageDestination, blobs []blob) (int, error) {
	var p *mpb.Progress
	if c.opts.Progress != nil {
		p = mpb.NewWithContext(ctx, mpb.WithOutput(c.opts.Progress), mpb.WithWidth(40))
	}
	uploaded := 0
	var firstErr error
	for _, b := range blobs {
		var bar *mpb.Bar
		if p != nil {
			bar = p.AddBar(b.Size,
				mpb.PrependDecorators(decor.Name("Copying artifact "+b.Name+" "), decor.Name(b.Digest.Encoded()[:12])),
				mpb.AppendDecorators(decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f"), "done")))
		}
		up, err := c.pushBlob(ctx, dest, b, bar)
		if err != nil {
			if bar != nil {
				bar.Abort(false)
			}
			firstErr = err
			break
		}
		if bar != nil {
			// A skipped blob read nothing: move the bar to its end. (mpb
			// completes a sized bar only when current reaches total; an
			// empty one only through SetTotal.)
			bar.SetCurrent(b.Size)
			bar.SetTotal(b.Size, true)
		}
		if up {
			uploaded++
		}
	}
	if p != nil {
		p.Wait()
	}
	return uploaded, firstErr
}

func (c *Client) pushBlob(ctx context.Context, dest types.ImageDestination, b blob, bar *mpb.Bar) (bool, error) {
	info := types.BlobInfo{Digest: b.Digest, Size: b.Size}
	var have bool
	err := c.withRetry(ctx, "check blob "+b.Name, func() error {
		var err error
		have, _, err = dest.TryReusingBlob(ctx, info, none.NoCache, false)
		return err
	})
	if err != nil || have {
		c.log.Debug("artifact blob", "artifact", b.Name, "digest", b.Digest, "present", have)
		return false, err
	}
	err = c.withRetry(ctx, "upload blob "+b.Name, func() error {
		r, err := b.open()
		if err != nil {
			return err
		}
		defer r.Close()
		var rd io.Reader = ctxReader{ctx, r}
		if bar != nil {
			bar.SetCurrent(0)
			rd = bar.ProxyReader(rd)
		}
		got, err := dest.PutBlob(ctx, rd, info, none.NoCache, false)
		if err == nil && got.Digest != b.Digest {
			err = &VerifyError{b.Name, fmt.Errorf("registry stored %s, want %s", got.Digest, b.Digest)}
		}
		return err
	})
	return err == nil, err
}

// fetchBlob streams the blob desc from src into w, checking size and digest.
func (c *Client) fetchBlob(ctx context.Context, src types.ImageSource, name string, d digest.Digest, size int64, w io.Writer, p *mpb.Progress) error {
	return c.fetchBlobChecked(ctx, src, name, d, size, w, p, digestCheck{d, d.Verifier()})
}

// blobCheck hashes a blob as it streams by, then says whether it was the one
// asked for.
type blobCheck interface {
	io.Writer
	check() error
}

// digestCheck checks a blob against its descriptor's digest.
type digestCheck struct {
	d digest.Digest
	v digest.Verifier
}

func (c digestCheck) Write(b []byte) (int, error) { return c.v.Write(b) }

func (c digestCheck) check() error {
	if !c.v.Verified() {
		return fmt.Errorf("content does not match digest %s", c.d)
	}
	return nil
}

// fetchBlobChecked is fetchBlob with the hashing chosen by the caller, so a
// root image is hashed once for its digest and its pieces together.
func (c *Client) fetchBlobChecked(ctx context.Context, src types.ImageSource, name string, d digest.Digest, size int64, w io.Writer, p *mpb.Progress, chk blobCheck) error {
	rc, _, err := src.GetBlob(ctx, types.BlobInfo{Digest: d, Size: size}, none.NoCache)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer rc.Close()
	var r io.Reader = ctxReader{ctx, io.LimitReader(rc, size+1)}
	var bar *mpb.Bar
	if p != nil {
		bar = p.AddBar(size,
			mpb.PrependDecorators(decor.Name("Fetching artifact "+name+" "), decor.Name(d.Encoded()[:12])),
			mpb.AppendDecorators(decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f"), "done")))
		r = bar.ProxyReader(r)
		defer func() {
			if !bar.Completed() {
				bar.Abort(false)
			}
		}()
	}
	n, err := copyHashing(w, chk, r)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if n != size {
		return &VerifyError{name, fmt.Errorf("%d bytes, descriptor says %d", n, size)}
	}
	if err := chk.check(); err != nil {
		return &VerifyError{name, err}
	}
	return nil
}

// fetchManifest reads the manifest of ref and checks it against its digest
// when ref is digested.
func (c *Client) fetchManifest(ctx context.Context, ref reference.Named) ([]byte, digest.Digest, error) {
	var b []byte
	err := c.withRetry(ctx, "fetch manifest "+ref.String(), func() error {
		src, err := c.source(ctx, ref)
		if err != nil {
			return err
		}
		defer src.Close()
		b, _, err = src.GetManifest(ctx, nil)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	d := digest.FromBytes(b)
	if dg, ok := ref.(reference.Digested); ok && dg.Digest() != d {
		return nil, "", &VerifyError{"manifest " + ref.String(), fmt.Errorf("content digest %s", d)}
	}
	return b, d, nil
}

// isNotFound reports whether err means the tag or manifest does not exist.
func isNotFound(err error) bool {
	var ue docker.ErrUnauthorizedForCredentials
	if errors.As(err, &ue) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"manifest unknown", "not found", "name unknown", "404"} {
		if strings.Contains(strings.ToLower(msg), s) {
			return true
		}
	}
	return false
}

// copyHashing copies src to w and feeds the same bytes to hash, which runs
// on its own goroutine a few buffers behind: hashing (the costliest step of
// a pull) overlaps the network reads and file writes instead of adding to
// them, and every byte is still hashed exactly once. hash must not fail
// (a digest or piece hasher).
func copyHashing(w, hash io.Writer, src io.Reader) (int64, error) {
	const bufs, size = 4, 1 << 20
	free := make(chan []byte, bufs)
	for i := 0; i < bufs; i++ {
		free <- make([]byte, size)
	}
	full := make(chan []byte, bufs)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range full {
			hash.Write(b)
			free <- b[:cap(b)]
		}
	}()
	defer func() { close(full); <-hashed }()
	var n int64
	for {
		buf := <-free
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			full <- buf[:k]
		} else {
			free <- buf
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
