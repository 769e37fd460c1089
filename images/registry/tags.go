package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// PublishSpec is a recipe's `publish:` section, carried on the image as the
// JSON label images.LabelPublish.
type PublishSpec struct {
	Registry string   `json:"registry" yaml:"registry"` // repository prefix, e.g. registry.example:5000/cluster
	Tags     []string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// ParsePublishSpec decodes the images.LabelPublish label value; an empty value
// gives an empty spec.
func ParsePublishSpec(label string) (PublishSpec, error) {
	var s PublishSpec
	if strings.TrimSpace(label) == "" {
		return s, nil
	}
	dec := json.NewDecoder(strings.NewReader(label))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("publish label: %w", err)
	}
	return s, nil
}

// TagData are the fields a tag template may use.
type TagData struct {
	Name         string // image (recipe) name
	Date         string // UTC date of the publish, YYYYMMDD
	CacheKey     string // first 12 hex digits of the layer cache key (as the local tag)
	FullCacheKey string // the whole cache key
}

// NewTagData fills TagData for an image at time now.
func NewTagData(name, cacheKey string, now time.Time) TagData {
	short := cacheKey
	if len(short) > 12 {
		short = short[:12]
	}
	return TagData{Name: name, Date: now.UTC().Format("20060102"), CacheKey: short, FullCacheKey: cacheKey}
}

// tagRe is the OCI distribution spec's tag grammar.
var tagRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ExpandTags renders each tag template with d, checks the result is a valid
// tag, and drops duplicates (first wins). Templates use Go text/template syntax
// with missingkey=error, e.g. "{{ .Date }}".
func ExpandTags(templates []string, d TagData) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i, t := range templates {
		tpl, err := template.New(fmt.Sprintf("tag %d", i+1)).Option("missingkey=error").Parse(t)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		tag := strings.TrimSpace(b.String())
		if !tagRe.MatchString(tag) {
			return nil, fmt.Errorf("tag %q expands to %q, which is not a valid OCI tag", t, tag)
		}
		if isReservedTag(tag) {
			return nil, fmt.Errorf("tag %q expands to %q, which imgctl reserves for artifacts", t, tag)
		}
		if !seen[tag] {
			seen[tag] = true
			out = append(out, tag)
		}
	}
	return out, nil
}

// Tag suffixes of the tag convention (docs/registry.md): the artifact set of
// image manifest sha256:H is tagged sha256-H.imgctl, its signature
// sha256-H.imgctl-sig.
const (
	artifactsSuffix = ".imgctl"
	signatureSuffix = ".imgctl-sig"
)

// ArtifactsTag is the tag under which the artifact set of the image with
// manifest digest imageDigest is stored.
func ArtifactsTag(imageDigest digest.Digest) string {
	return imageDigest.Algorithm().String() + "-" + imageDigest.Encoded() + artifactsSuffix
}

// SignatureTag is the tag of the signature over that image and artifact set.
func SignatureTag(imageDigest digest.Digest) string {
	return imageDigest.Algorithm().String() + "-" + imageDigest.Encoded() + signatureSuffix
}

func isReservedTag(tag string) bool {
	return strings.HasSuffix(tag, artifactsSuffix) || strings.HasSuffix(tag, signatureSuffix)
}

// Repository joins a registry prefix and an image name into a repository
// name, e.g. "127.0.0.1:5000/cluster" + "compute-base".
func Repository(prefix, name string) (reference.Named, error) {
	prefix = strings.TrimSuffix(strings.TrimSpace(prefix), "/")
	if prefix == "" {
		return nil, fmt.Errorf("no registry given (set publish.registry in the recipe or pass --registry)")
	}
	prefix = strings.TrimPrefix(prefix, "docker://")
	n, err := reference.ParseNormalizedNamed(prefix + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("registry %q and name %q: %w", prefix, name, err)
	}
	if _, ok := n.(reference.Tagged); ok {
		return nil, fmt.Errorf("registry %q: give a repository prefix without a tag (tags come from --tag or publish.tags)", prefix)
	}
	return n, nil
}
