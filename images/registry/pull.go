package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	istorage "go.podman.io/image/v5/storage"

	"github.com/imgctl/imgctl/images"
)

// PullRequest says what to pull.
type PullRequest struct {
	Ref       string            // registry reference, e.g. 127.0.0.1:5000/cluster/compute-base:latest
	VerifyKey ed25519.PublicKey // nil: no signature required
}

// PullResult reports a pull.
type PullResult struct {
	Ref             string        `json:"ref"`
	ImageDigest     string        `json:"image_digest"`
	ImageID         string        `json:"image_id"`
	ArtifactsDigest string        `json:"artifacts_digest,omitempty"`
	Artifacts       *images.Entry `json:"artifacts,omitempty"` // nil: the image has no artifact set
	Verified        bool          `json:"signature_verified"`
}

// ParseRef parses a registry reference; without tag or digest it means :latest.
func ParseRef(s string) (reference.Named, error) {
	n, err := reference.ParseNormalizedNamed(strings.TrimPrefix(strings.TrimSpace(s), "docker://"))
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", s, err)
	}
	return reference.TagNameOnly(n), nil
}

// Pull fetches the image at req.Ref into container storage and its artifact
// set into the artifact store. Every blob is checked as it arrives: against
// its digest, the root image piece by piece against the set manifest (itself
// checked against its digest); every file's sha256 must be the manifest's;
// and, with a key,
// the signature against the image, the artifact manifest and every file. A
// set is installed only when all checks pass.
func (c *Client) Pull(ctx context.Context, req PullRequest) (*PullResult, error) {
	if c.opts.Storage == nil || c.opts.Artifacts == nil {
		return nil, errors.New("pull needs container storage and an artifact store")
	}
	ref, err := ParseRef(req.Ref)
	if err != nil {
		return nil, err
	}
	repo := reference.TrimNamed(ref)
	_, imgDigest, err := c.fetchManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Ref: ref.String(), ImageDigest: imgDigest.String()}

	var payload *Payload
	if req.VerifyKey != nil {
		if payload, err = c.fetchSignature(ctx, repo, imgDigest, req.VerifyKey); err != nil {
			return nil, err
		}
		if payload.ImageDigest != imgDigest.String() {
			return nil, fmt.Errorf("%s: %w: signed image %s, registry has %s", ref, ErrSignature, payload.ImageDigest, imgDigest)
		}
		res.Verified = true
	}

	am, amDigest, err := c.fetchArtifactManifest(ctx, repo, imgDigest)
	switch {
	case errors.Is(err, ErrNoArtifacts) && (payload == nil || payload.ArtifactsDigest == ""):
		c.log.Info("image has no boot artifacts", "image", ref.String())
	case err != nil:
		return nil, err
	case payload != nil && payload.ArtifactsDigest != amDigest.String():
		return nil, fmt.Errorf("%s: %w: signed artifacts %s, registry has %s", ref, ErrSignature, payload.ArtifactsDigest, amDigest)
	}

	// The image and the artifact set come down side by side, with one set
	// of progress bars (the image copy prints its lines above them). The set
	// is installed only once the image is in storage, as before.
	var p *mpb.Progress
	report := io.Discard
	if c.opts.Progress != nil {
		p = mpb.NewWithContext(ctx, mpb.WithOutput(c.opts.Progress), mpb.WithWidth(40))
		report = p
	}
	type copied struct {
		id  string
		err error
	}
	imageDone := make(chan copied, 1)
	setCtx, cancelSet := context.WithCancel(ctx) // no use fetching a set whose image failed
	defer cancelSet()
	go func() {
		id, err := c.copyImage(ctx, ref, repo, imgDigest, report)
		if err != nil {
			cancelSet()
		}
		imageDone <- copied{id, err}
	}()
	var img *copied
	waitImage := func() error {
		if img == nil {
			v := <-imageDone
			img = &v
		}
		return img.err
	}
	var e *images.Entry
	var setErr error
	if am != nil {
		e, setErr = c.installSet(setCtx, repo, am, payload, req.VerifyKey, p, waitImage)
	}
	imageErr := waitImage()
	if p != nil {
		p.Wait()
	}
	switch {
	case imageErr != nil:
		return nil, imageErr
	case setErr != nil:
		return nil, fmt.Errorf("artifacts of %s: %w", ref, setErr)
	}
	res.ImageID = img.id
	if am != nil {
		res.ArtifactsDigest, res.Artifacts = amDigest.String(), e
	}
	return res, nil
}

// copyImage copies repo@dgst into container storage, named ref, and returns
// the local image ID.
func (c *Client) copyImage(ctx context.Context, ref, repo reference.Named, dgst digest.Digest, report io.Writer) (string, error) {
	byDigest, err := reference.WithDigest(repo, dgst)
	if err != nil {
		return "", err
	}
	src, err := docker.NewReference(byDigest)
	if err != nil {
		return "", err
	}
	dest, err := istorage.Transport.NewStoreReference(c.opts.Storage, ref, "")
	if err != nil {
		return "", fmt.Errorf("storage reference %s: %w", ref, err)
	}
	pc, err := policyContext()
	if err != nil {
		return "", err
	}
	defer pc.Destroy()
	c.log.Info("pulling image", "image", ref.String(), "digest", dgst)
	err = c.withRetry(ctx, "pull image "+ref.String(), func() error {
		sys := c.systemContext()
		_, err := copy.Image(ctx, pc, dest, src, &copy.Options{ReportWriter: report, SourceCtx: sys, DestinationCtx: sys})
		return err
	})
	if err != nil {
		return "", err
	}
	img, err := istorage.Transport.GetStoreImage(c.opts.Storage, dest)
	if err != nil {
		return "", fmt.Errorf("pulled image %s: %w", ref, err)
	}
	return img.ID, nil
}

// fetchArtifactManifest finds the artifact set of image dgst by the tag
// convention; ErrNoArtifacts when the tag does not exist.
func (c *Client) fetchArtifactManifest(ctx context.Context, repo reference.Named, dgst digest.Digest) (*v1.Manifest, digest.Digest, error) {
	tagged, err := reference.WithTag(repo, ArtifactsTag(dgst))
	if err != nil {
		return nil, "", err
	}
	b, d, err := c.fetchManifest(ctx, tagged)
	if err != nil {
		if isNotFound(err) {
			return nil, "", fmt.Errorf("%s: %w", tagged, ErrNoArtifacts)
		}
		return nil, "", err
	}
	am, err := parseArtifactManifest(b, dgst)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", tagged, err)
	}
	return am, d, nil
}

// fetchSignature reads and checks the signature of image dgst.
func (c *Client) fetchSignature(ctx context.Context, repo reference.Named, dgst digest.Digest, pub ed25519.PublicKey) (*Payload, error) {
	tagged, err := reference.WithTag(repo, SignatureTag(dgst))
	if err != nil {
		return nil, err
	}
	b, _, err := c.fetchManifest(ctx, tagged)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w: no signature in the registry", repo, ErrSignature)
		}
		return nil, err
	}
	var sm v1.Manifest
	if err := json.Unmarshal(b, &sm); err != nil || sm.ArtifactType != SignatureType || len(sm.Layers) != 1 || sm.Layers[0].Size > 1<<20 {
		return nil, fmt.Errorf("%s: %w: malformed signature manifest", tagged, ErrSignature)
	}
	src, err := c.source(ctx, tagged)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var buf strings.Builder
	if err := c.fetchBlob(ctx, src, "signature", sm.Layers[0].Digest, sm.Layers[0].Size, &buf, nil); err != nil {
		return nil, err
	}
	var s Signature
	if err := json.Unmarshal([]byte(buf.String()), &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", tagged, ErrSignature, err)
	}
	p, err := s.open(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tagged, err)
	}
	p.sig = &s
	return p, nil
}

// installSet downloads the files of am into a staging directory, verifies
// them, and installs the set once beforeInstall (the image copy) succeeded.
// Its progress bars go to p (nil: none).
func (c *Client) installSet(ctx context.Context, repo reference.Named, am *v1.Manifest, payload *Payload, pub ed25519.PublicKey, p *mpb.Progress, beforeInstall func() error) (*images.Entry, error) {
	name, localDigest := am.Annotations[AnnotationName], am.Annotations[AnnotationImageDigest]
	// Both name the directory the set goes to: no path tricks.
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || digest.Digest(localDigest).Validate() != nil {
		return nil, &VerifyError{"artifact manifest", fmt.Errorf("annotations name %q, image digest %q", name, localDigest)}
	}
	if payload != nil {
		got := map[string]string{}
		for _, l := range am.Layers {
			got[l.Annotations[v1.AnnotationTitle]] = l.Digest.String()
		}
		if err := compareFiles(repo.String(), payload.Files, got); err != nil {
			return nil, err
		}
	}
	staged, err := c.opts.Artifacts.Stage(name, localDigest)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staged)
		}
	}()
	byTag, err := reference.WithTag(repo, ArtifactsTag(am.Subject.Digest))
	if err != nil {
		return nil, err
	}
	src, err := c.source(ctx, byTag)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// The set's manifest comes first, so each artifact is hashed once, as it
	// arrives: against its registry digest, the root against the manifest's
	// pieces (pieceCheck).
	layers := append([]v1.Descriptor(nil), am.Layers...)
	sort.SliceStable(layers, func(i, j int) bool {
		return layers[i].Annotations[v1.AnnotationTitle] == images.ManifestFile && layers[j].Annotations[v1.AnnotationTitle] != images.ManifestFile
	})
	var m *images.Manifest
	sums := map[string]images.Sums{} // by artifact kind
	for _, l := range layers {
		file := l.Annotations[v1.AnnotationTitle]
		// Titles come from the registry: plain names in the set, nothing else.
		if file == "" || file != filepath.Base(file) || strings.HasPrefix(file, ".") || file == signatureFile {
			return nil, &VerifyError{"artifact manifest", fmt.Errorf("layer title %q is not a file name", file)}
		}
		kind := m.KindOf(file)
		if kind != "" && l.Digest != digest.NewDigestFromEncoded(digest.SHA256, m.Artifacts[kind].SHA256) {
			return nil, &VerifyError{file, fmt.Errorf("registry digest %s, set manifest says sha256 %s", l.Digest, m.Artifacts[kind].SHA256)}
		}
		err := c.withRetry(ctx, "fetch "+file, func() error {
			f, err := os.OpenFile(filepath.Join(staged, file), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			var chk blobCheck = digestCheck{l.Digest, l.Digest.Verifier()}
			var pc *pieceCheck
			if kind == images.RootFS {
				if pc, err = newPieceCheck(m.Root.PieceSize, m.Root.Pieces); err != nil {
					f.Close()
					return &VerifyError{images.ManifestFile, err}
				}
				chk = pc
			}
			err = c.fetchBlobChecked(ctx, src, file, l.Digest, l.Size, f, p, chk)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && kind != "" {
				sums[kind] = images.Sums{SHA256: l.Digest.Encoded()}
				if pc != nil {
					sums[kind] = images.Sums{SHA256: l.Digest.Encoded(), Pieces: pc.pieces}
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if file == images.ManifestFile {
			if m, err = images.ReadManifest(filepath.Join(staged, file)); err != nil {
				return nil, &VerifyError{images.ManifestFile, err}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(staged, overlayTar)); err == nil {
		// Its digest was checked on fetch (and against the signature above).
		if err := unpackOverlay(filepath.Join(staged, overlayTar), filepath.Join(staged, overlayDir)); err != nil {
			return nil, &VerifyError{overlayTar, err}
		}
		if err := os.Remove(filepath.Join(staged, overlayTar)); err != nil {
			return nil, err
		}
	}
	if m == nil {
		return nil, &VerifyError{images.ManifestFile, fmt.Errorf("the artifact manifest has no %s layer", images.ManifestFile)}
	}
	if m.Name != name || m.ImageDigest != localDigest {
		return nil, &VerifyError{images.ManifestFile, fmt.Errorf("names %s@%s, artifact manifest says %s@%s", m.Name, m.ImageDigest, name, localDigest)}
	}
	// The manifest is untrusted until verified: its files must be ones just
	// fetched into the set, never paths elsewhere on this host.
	for kind, a := range m.Artifacts {
		if _, err := os.Lstat(filepath.Join(staged, a.File)); a.File != filepath.Base(a.File) || strings.HasPrefix(a.File, ".") || err != nil {
			return nil, &VerifyError{images.ManifestFile, fmt.Errorf("%s artifact file %q is not a file of the set", kind, a.File)}
		}
	}
	if err := verifyFetched(ctx, &images.Entry{Dir: staged, Manifest: m}, sums); err != nil {
		return nil, &VerifyError{"artifact set " + name, err}
	}
	if payload != nil {
		if err := writeSignature(staged, payload.sig); err != nil {
			return nil, err
		}
	}
	if err := beforeInstall(); err != nil {
		return nil, err
	}
	e, err := c.opts.Artifacts.Install(staged)
	if err != nil {
		return nil, err
	}
	ok = true
	if payload != nil {
		// Install keeps an identical set that was already there; give it the
		// signature too, then check it as the boot service will.
		if _, err := os.Stat(filepath.Join(e.Dir, signatureFile)); err != nil {
			if err := writeSignature(e.Dir, payload.sig); err != nil {
				return nil, err
			}
		}
		if err := VerifySignature(ctx, e, pub); err != nil {
			return nil, err
		}
	}
	c.log.Info("installed artifacts", "image", name, "dir", e.Dir)
	return e, nil
}

// verifyFetched checks the set against the sums taken while its files were
// fetched; a file hashed some other way (a digest that is not sha256) is read
// again in full.
func verifyFetched(ctx context.Context, e *images.Entry, sums map[string]images.Sums) error {
	var errs []error
	for kind := range e.Manifest.Artifacts {
		s, ok := sums[kind]
		if !ok {
			return e.Verify(ctx)
		}
		if err := e.Manifest.Check(kind, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pieceCheck hashes a root image as it streams by, once: each byte goes
// into the sha256 of its piece, and the pieces must be the set manifest's.
// The manifest itself arrived first and was checked against its registry
// digest, and the root's registry digest was compared with the manifest's
// sha256 before the fetch, so matching every piece proves every byte. (The
// whole-file sha256 is not taken again here: it would hash each byte a
// second time. Publish refuses a set whose pieces and sha256 disagree, and
// the boot server checks both before it first serves a set.)
type pieceCheck struct {
	size   int64
	want   []string
	h      hash.Hash
	n      int64 // bytes of the current piece so far
	pieces []string
}

func newPieceCheck(pieceSize int64, want []string) (*pieceCheck, error) {
	if pieceSize <= 0 {
		return nil, fmt.Errorf("set manifest: root piece size %d", pieceSize)
	}
	return &pieceCheck{size: pieceSize, want: want, h: sha256.New()}, nil
}

func (pc *pieceCheck) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := int(min(int64(len(b)), pc.size-pc.n))
		pc.h.Write(b[:k])
		pc.n += int64(k)
		b = b[k:]
		if pc.n == pc.size {
			pc.endPiece()
		}
	}
	return total, nil
}

func (pc *pieceCheck) endPiece() {
	pc.pieces = append(pc.pieces, hex.EncodeToString(pc.h.Sum(nil)))
	pc.h.Reset()
	pc.n = 0
}

// check closes the last piece and compares the pieces with the manifest's.
func (pc *pieceCheck) check() error {
	if pc.n > 0 {
		pc.endPiece()
	}
	if !slices.Equal(pc.pieces, pc.want) {
		return errors.New("piece hashes differ from the manifest")
	}
	return nil
}
