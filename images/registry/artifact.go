package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgctl/imgctl/images"
)

// Media types of the artifact manifest (docs/registry.md).
const (
	// ArtifactType marks an OCI manifest as an imgctl boot artifact set.
	ArtifactType = "application/vnd.imgctl.boot.v1"
	// SignatureType marks an OCI manifest as an imgctl signature.
	SignatureType = "application/vnd.imgctl.signature.v1"
	// FileMediaType is the media type of every file of a set (opaque bytes).
	FileMediaType = "application/vnd.imgctl.boot.file.v1"
	// ManifestMediaType is the media type of the set's manifest.json layer.
	ManifestMediaType = "application/vnd.imgctl.boot.manifest.v1+json"
)

// Annotations imgctl writes on artifact manifests.
const (
	AnnotationName        = "org.imgctl.name"         // image (recipe) name
	AnnotationImageDigest = "org.imgctl.image.digest" // the set's manifest.json image_digest (local)
)

// emptyConfig is the OCI 1.1 empty descriptor's content.
var emptyConfig = []byte("{}")

// ErrNoArtifacts means the registry holds no artifact set for an image.
var ErrNoArtifacts = errors.New("no boot artifacts in the registry")

// VerifyError is a digest, size or content check that failed on pull.
type VerifyError struct {
	What string // blob, file or manifest that failed
	Err  error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("verify %s: %v", e.What, e.Err) }
func (e *VerifyError) Unwrap() error { return e.Err }

// setFile is one file of an artifact set on disk.
type setFile struct {
	Name   string
	Path   string
	Size   int64
	Digest digest.Digest
}

// signatureFile is the name of the signature inside an installed set; it is
// not part of the published set (it is published under its own tag).
const signatureFile = "signature.json"

// setFiles lists the files of an installed set with their digests, as they
// are published. With verified (the set was checked against its manifest)
// the digests of kernel, initramfs and root image come from the manifest;
// other files (manifest.json), and all of them otherwise, are hashed here. The overlay/ directory travels as overlayTar, packed into
// a temp file that done removes. Other subdirectories are refused.
func setFiles(ctx context.Context, e *images.Entry, verified bool) (files []setFile, done func(), err error) {
	var temps []string
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	known := map[string]images.Artifact{}
	for _, a := range e.Manifest.Artifacts {
		known[a.File] = a
	}
	des, err := os.ReadDir(e.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact set: %w", err)
	}
	var out []setFile
	for _, de := range des {
		name := de.Name()
		if name == signatureFile || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(e.Dir, name)
		if de.IsDir() && name == overlayDir {
			tarPath, err := packOverlay(p)
			if err != nil {
				return nil, nil, fmt.Errorf("artifact set %s: pack %s: %w", e.Dir, name, err)
			}
			if tarPath == "" {
				continue // no templates: nothing to send
			}
			temps = append(temps, tarPath)
			name, p = overlayTar, tarPath
		} else if !de.Type().IsRegular() || name == overlayTar {
			return nil, nil, fmt.Errorf("artifact set %s: %s is not a regular file", e.Dir, name)
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		f := setFile{Name: name, Path: p, Size: st.Size()}
		if a, ok := known[name]; ok && verified && a.Size == st.Size() {
			f.Digest = digest.NewDigestFromEncoded(digest.SHA256, a.SHA256)
		} else {
			d, err := hashFile(ctx, p)
			if err != nil {
				return nil, nil, err
			}
			f.Digest = d
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, cleanup, nil
}

// overlayDir is the set's template directory (images/artifacts.OverlayDir).
const overlayDir = "overlay"

func hashFile(ctx context.Context, path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// emptyDescriptor is the config descriptor of artifact manifests.
func emptyDescriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: digest.FromBytes(emptyConfig), Size: int64(len(emptyConfig)), Data: emptyConfig}
}

// artifactManifest builds the OCI manifest for a set's files, linked to the
// image manifest subject. The result is deterministic for the same files.
func artifactManifest(m *images.Manifest, files []setFile, subject v1.Descriptor) ([]byte, error) {
	am := v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       emptyDescriptor(),
		Subject:      &subject,
		Annotations: map[string]string{
			AnnotationName:        m.Name,
			AnnotationImageDigest: m.ImageDigest,
		},
	}
	for _, f := range files {
		mt := FileMediaType
		if f.Name == images.ManifestFile {
			mt = ManifestMediaType
		}
		am.Layers = append(am.Layers, v1.Descriptor{
			MediaType: mt, Digest: f.Digest, Size: f.Size,
			Annotations: map[string]string{v1.AnnotationTitle: f.Name},
		})
	}
	return json.Marshal(am)
}

// parseArtifactManifest decodes and checks an artifact manifest fetched from a
// registry: type, subject, and safe, unique file names.
func parseArtifactManifest(b []byte, imageDigest digest.Digest) (*v1.Manifest, error) {
	var am v1.Manifest
	if err := json.Unmarshal(b, &am); err != nil {
		return nil, &VerifyError{"artifact manifest", err}
	}
	if am.ArtifactType != ArtifactType {
		return nil, &VerifyError{"artifact manifest", fmt.Errorf("artifact type %q, want %q", am.ArtifactType, ArtifactType)}
	}
	if am.Subject == nil || am.Subject.Digest != imageDigest {
		return nil, &VerifyError{"artifact manifest", fmt.Errorf("subject is not image %s", imageDigest)}
	}
	seen := map[string]bool{}
	hasManifest := false
	for _, l := range am.Layers {
		name := l.Annotations[v1.AnnotationTitle]
		if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || name == signatureFile || seen[name] {
			return nil, &VerifyError{"artifact manifest", fmt.Errorf("bad or duplicate file name %q", name)}
		}
		if err := l.Digest.Validate(); err != nil || l.Size < 0 {
			return nil, &VerifyError{"artifact manifest", fmt.Errorf("file %s: bad descriptor", name)}
		}
		seen[name] = true
		hasManifest = hasManifest || name == images.ManifestFile
	}
	if !hasManifest {
		return nil, &VerifyError{"artifact manifest", fmt.Errorf("no %s in the set", images.ManifestFile)}
	}
	return &am, nil
}
