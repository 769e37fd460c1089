package registry

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"

	"github.com/imgctl/imgctl/images"
)

// PublishRequest says what to publish where.
type PublishRequest struct {
	Image    string             // local image: ID, name, or recipe name
	Registry string             // repository prefix; empty: the image's publish label
	Tags     []string           // tag templates; empty: the label's, else "latest"
	DryRun   bool               // list what would be pushed; touch nothing
	SignKey  ed25519.PrivateKey // nil: unsigned
	Now      time.Time          // for {{ .Date }}; zero: time.Now()
}

// Blob is one blob of a publish, for listings.
type Blob struct {
	Kind   string `json:"kind"` // layer, config, artifact
	Name   string `json:"name,omitempty"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// PublishResult reports a publish (or what a dry run would do).
type PublishResult struct {
	Name            string   `json:"name"`
	ImageID         string   `json:"image_id"`
	Repository      string   `json:"repository"`
	Tags            []string `json:"tags"`
	ImageDigest     string   `json:"image_digest,omitempty"` // manifest digest in the registry
	ArtifactsTag    string   `json:"artifacts_tag,omitempty"`
	ArtifactsDigest string   `json:"artifacts_digest,omitempty"`
	SignatureTag    string   `json:"signature_tag,omitempty"`
	DryRun          bool     `json:"dry_run,omitempty"`
	Blobs           []Blob   `json:"blobs"`
	// UploadedArtifactBlobs counts artifact blobs sent (the rest were present).
	UploadedArtifactBlobs int `json:"uploaded_artifact_blobs"`
}

// Publish pushes an image and its artifact set. Order matters for
// interrupted runs: image blobs and manifest by digest (no tag), artifact set
// under its digest tag, signature, and the requested tags last, so a failed
// run leaves no user-visible tag pointing at an incomplete publish.
func (c *Client) Publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	li, err := c.findLocal(ctx, req.Image)
	if err != nil {
		return nil, err
	}
	spec, err := ParsePublishSpec(li.labels[images.LabelPublish])
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	prefix, templates := spec.Registry, spec.Tags
	if req.Registry != "" {
		prefix = req.Registry
	}
	if len(req.Tags) > 0 {
		templates = req.Tags
	}
	if len(templates) == 0 {
		templates = []string{"latest"}
	}
	repo, err := Repository(prefix, li.name)
	if err != nil {
		return nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	tags, err := ExpandTags(templates, NewTagData(li.name, li.labels[images.LabelCacheKey], now))
	if err != nil {
		return nil, err
	}
	set, err := c.findSet(ctx, li)
	if err != nil {
		return nil, err
	}
	var files []setFile
	if set != nil {
		// The upload names each file by the manifest's sha256, so the set
		// must match it: a registry rejects (or a client trips over) a blob
		// whose bytes are not what its digest says.
		if !c.trustSets {
			if err := set.Verify(ctx); err != nil {
				return nil, fmt.Errorf("publish %s: the artifact set does not match its manifest: %w", req.Image, err)
			}
		}
		var done func()
		if files, done, err = setFiles(ctx, set, !c.trustSets); err != nil {
			return nil, err
		}
		defer done()
	} else if li.labels[images.LabelBoot] != "" {
		return nil, fmt.Errorf("image %s is bootable but has no boot artifacts in the state directory: flatten it first", req.Image)
	}
	res := &PublishResult{Name: li.name, ImageID: li.img.ID, Repository: repo.String(), Tags: tags, DryRun: req.DryRun}
	res.Blobs = append(res.Blobs, Blob{Kind: "config", Digest: li.config.Digest.String(), Size: li.config.Size})
	for _, l := range li.layers {
		res.Blobs = append(res.Blobs, Blob{Kind: "layer", Digest: l.Digest.String(), Size: l.Size})
	}
	for _, f := range files {
		res.Blobs = append(res.Blobs, Blob{Kind: "artifact", Name: f.Name, Digest: f.Digest.String(), Size: f.Size})
	}
	if req.DryRun {
		return res, nil
	}

	c.log.Info("pushing image", "image", li.name, "repository", repo.String())
	imgManifest, err := c.pushImage(ctx, li, repo)
	if err != nil {
		return nil, err
	}
	imgDigest := digest.FromBytes(imgManifest)
	res.ImageDigest = imgDigest.String()
	subject := v1.Descriptor{MediaType: manifest.GuessMIMEType(imgManifest), Digest: imgDigest, Size: int64(len(imgManifest))}

	var payload *Payload
	if req.SignKey != nil {
		payload = &Payload{Name: li.name, ImageDigest: imgDigest.String()}
	}
	if set != nil {
		am, err := artifactManifest(set.Manifest, files, subject)
		if err != nil {
			return nil, err
		}
		blobs := []blob{{Name: "config", Digest: emptyDescriptor().Digest, Size: int64(len(emptyConfig)), Data: emptyConfig}}
		for _, f := range files {
			blobs = append(blobs, blob{Name: f.Name, Digest: f.Digest, Size: f.Size, Path: f.Path})
		}
		res.ArtifactsTag = ArtifactsTag(imgDigest)
		n, err := c.pushManifestWithBlobs(ctx, repo, res.ArtifactsTag, blobs, am)
		res.UploadedArtifactBlobs = n
		if err != nil {
			return nil, fmt.Errorf("push artifacts of %s: %w", li.name, err)
		}
		res.ArtifactsDigest = digest.FromBytes(am).String()
		if payload != nil {
			payload.ArtifactsDigest = res.ArtifactsDigest
			payload.Files = filesMap(files)
		}
	}
	if payload != nil {
		sig, err := sign(*payload, req.SignKey)
		if err != nil {
			return nil, err
		}
		res.SignatureTag = SignatureTag(imgDigest)
		if err := c.pushSignature(ctx, repo, res.SignatureTag, sig, subject); err != nil {
			return nil, fmt.Errorf("push signature of %s: %w", li.name, err)
		}
		if set != nil {
			// The local set carries the signature too, so a server here can
			// check it the same way as on a pulled copy.
			if err := writeSignature(set.Dir, sig); err != nil {
				return nil, err
			}
		}
	}
	for _, t := range tags {
		if err := c.putManifest(ctx, repo, t, imgManifest); err != nil {
			return nil, fmt.Errorf("tag %s:%s: %w", repo, t, err)
		}
	}
	c.log.Info("published", "image", li.name, "repository", repo.String(), "digest", imgDigest, "tags", tags)
	return res, nil
}

// pushImage copies the image from containers/storage to repo by digest and
// returns the manifest as pushed.
func (c *Client) pushImage(ctx context.Context, li *localImage, repo reference.Named) ([]byte, error) {
	dest, err := docker.NewReferenceUnknownDigest(repo)
	if err != nil {
		return nil, err
	}
	pc, err := policyContext()
	if err != nil {
		return nil, err
	}
	defer pc.Destroy()
	var out []byte
	err = c.withRetry(ctx, "push image "+repo.String(), func() error {
		sys := c.systemContext()
		out, err = copy.Image(ctx, pc, dest, li.ref, &copy.Options{
			ReportWriter:   c.reportWriter(),
			SourceCtx:      sys,
			DestinationCtx: sys,
		})
		return err
	})
	return out, err
}

func (c *Client) reportWriter() io.Writer {
	if c.opts.Progress == nil {
		return io.Discard
	}
	return c.opts.Progress
}

// pushManifestWithBlobs uploads blobs, then puts m under tag.
func (c *Client) pushManifestWithBlobs(ctx context.Context, repo reference.Named, tag string, blobs []blob, m []byte) (int, error) {
	dest, err := c.destination(ctx, repo, tag)
	if err != nil {
		return 0, err
	}
	defer dest.Close()
	n, err := c.pushBlobs(ctx, dest, blobs)
	if err != nil {
		return n, err
	}
	return n, c.withRetry(ctx, "put manifest "+tag, func() error { return dest.PutManifest(ctx, m, nil) })
}

// putManifest puts an existing manifest under another tag.
func (c *Client) putManifest(ctx context.Context, repo reference.Named, tag string, m []byte) error {
	dest, err := c.destination(ctx, repo, tag)
	if err != nil {
		return err
	}
	defer dest.Close()
	return c.withRetry(ctx, "put manifest "+tag, func() error { return dest.PutManifest(ctx, m, nil) })
}

// pushSignature stores sig as a one-layer OCI artifact under tag.
func (c *Client) pushSignature(ctx context.Context, repo reference.Named, tag string, sig *Signature, subject v1.Descriptor) error {
	b, err := json.Marshal(sig)
	if err != nil {
		return err
	}
	d := digest.FromBytes(b)
	sm, err := json.Marshal(v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: SignatureType,
		Config:       emptyDescriptor(),
		Layers:       []v1.Descriptor{{MediaType: SignatureType + "+json", Digest: d, Size: int64(len(b))}},
		Subject:      &subject,
	})
	if err != nil {
		return err
	}
	blobs := []blob{
		{Name: "config", Digest: emptyDescriptor().Digest, Size: int64(len(emptyConfig)), Data: emptyConfig},
		{Name: "signature", Digest: d, Size: int64(len(b)), Data: b},
	}
	_, err = c.pushManifestWithBlobs(ctx, repo, tag, blobs, sm)
	return err
}
