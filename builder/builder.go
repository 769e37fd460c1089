// Package builder builds imgctl recipes into OCI images in containers/storage
// with the buildah library: one committed image per recipe, parents first,
// reused when the layer's cache key has not changed.
package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.podman.io/storage"

	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// ImagePrefix is the repository prefix of every image imgctl builds.
const ImagePrefix = "imgctl/"

// Builder builds recipes into one store. It is used by one goroutine at a time.
type Builder struct {
	store    storage.Store
	log      *slog.Logger
	progress io.Writer // step lines and command output; io.Discard when quiet
	noCache  bool
	agent    AgentLocator
	started  time.Time
}

// Options configure a Builder.
type Options struct {
	Log      *slog.Logger // nil = discard
	Progress io.Writer    // nil = no progress output
	NoCache  bool         // rebuild every layer of the chain
	// Agent finds the static imgctl-agent binary installed into bootable images.
	// nil = DefaultAgent.
	Agent AgentLocator
}

// AgentLocator returns the path of the imgctl-agent binary.
type AgentLocator func() (string, error)

// New returns a Builder on store. The caller keeps ownership of the store.
func New(store storage.Store, opts Options) *Builder {
	p := opts.Progress
	if p == nil {
		p = io.Discard
	}
	agent := opts.Agent
	if agent == nil {
		agent = DefaultAgent
	}
	return &Builder{store: store, log: logging.OrDiscard(opts.Log), progress: p, noCache: opts.NoCache, agent: agent, started: time.Now()}
}

// Result describes one built (or reused) layer.
type Result struct {
	Name     string   `json:"name"`
	Recipe   string   `json:"recipe"`
	ImageID  string   `json:"image_id"`
	Tags     []string `json:"tags"`
	CacheKey string   `json:"cache_key"`
	Cached   bool     `json:"cached"`
	Bootable bool     `json:"bootable"`
	Seconds  float64  `json:"seconds"`
}

// Build builds r after its parent chain and returns one Result per layer,
// parents first.
func (b *Builder) Build(ctx context.Context, r *recipe.Recipe) ([]Result, error) {
	var results []Result
	if r.ParentRecipe != nil {
		parents, err := b.Build(ctx, r.ParentRecipe)
		if err != nil {
			return nil, err
		}
		results = parents
	}
	res, err := b.buildLayer(ctx, r)
	if err != nil {
		return nil, err
	}
	return append(results, *res), nil
}

// Tags are the two names of a built layer.
func Tags(name, key string) (latest, keyed string) {
	return ImagePrefix + name + ":latest", ImagePrefix + name + ":" + key[:12]
}

// parentImage resolves r's parent to an image in the store ("" for scratch).
func (b *Builder) parentImage(r *recipe.Recipe) (*storage.Image, error) {
	switch {
	case r.Parent == recipe.Scratch:
		return nil, nil
	case r.ParentRecipe != nil:
		latest, _ := Tags(r.ParentRecipe.Name, "000000000000")
		img, err := LookupImage(b.store, latest)
		if err != nil {
			return nil, fmt.Errorf("%s: parent image %s: %w", r.Path, latest, err)
		}
		return img, nil
	default:
		img, err := LookupImage(b.store, r.Parent)
		if err != nil {
			return nil, fmt.Errorf("%s: parent image %s is not in local storage (pull it first): %w", r.Path, r.Parent, err)
		}
		return img, nil
	}
}

// extraInputs are files imgctl adds to a bootable layer; they are part of its
// cache key so a new dracut module or agent rebuilds the layer.
func (b *Builder) extraInputs(r *recipe.Recipe, parentBoot bool) (map[string][]byte, error) {
	if r.EffectiveBoot() == nil && !parentBoot {
		return nil, nil
	}
	files, err := dracutModuleFiles()
	if err != nil {
		return nil, err
	}
	agent, err := b.agent()
	if err != nil {
		return nil, fmt.Errorf("%s: bootable image needs imgctl-agent: %w", r.Path, err)
	}
	data, err := os.ReadFile(agent)
	if err != nil {
		return nil, fmt.Errorf("%s: read imgctl-agent: %w", r.Path, err)
	}
	files[agentPath] = data
	return files, nil
}

// labelsFor are the labels imgctl sets on a layer's image.
func labelsFor(r *recipe.Recipe, key string, boot *images.BootSpec) (map[string]string, error) {
	l := map[string]string{}
	for k, v := range r.Labels {
		l[k] = v
	}
	l[images.LabelRecipe] = r.Name
	l[images.LabelCacheKey] = key
	parent := r.Parent
	if r.ParentRecipe != nil {
		parent = ImagePrefix + r.ParentRecipe.Name
	}
	l[images.LabelParent] = parent
	for label, v := range map[string]any{images.LabelBoot: boot, images.LabelPublish: r.Publish, images.LabelTest: r.Test} {
		if v == nil || (label == images.LabelTest && len(r.Test) == 0) || (label == images.LabelPublish && r.Publish == nil) || (label == images.LabelBoot && boot == nil) {
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		l[label] = string(j)
	}
	return l, nil
}
