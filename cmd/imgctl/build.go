package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/internal/cstore"
)

func addBuildCommands(root *cobra.Command, g *globals) {
	root.AddCommand(newBuildCmd(g), newLintCmd(g))
}

// openStore opens the container storage chosen by the --storage-* flags.
func (g *globals) openStore(cmd *cobra.Command) (storage.Store, error) {
	return cstore.Open(cmd.Context(), g.storage, g.logger())
}

// progressWriter is where long operations report progress: stderr, unless -q
// or the output is for machines.
func (g *globals) progressWriter() io.Writer {
	if g.quiet || g.output == "json" || g.output == "yaml" {
		return io.Discard
	}
	return g.stderr
}

// parseSet turns --set K=V flags into a map.
func parseSet(sets []string) (map[string]string, error) {
	m := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, &usageError{msg: fmt.Sprintf("--set %q: want KEY=VALUE", s)}
		}
		m[k] = v
	}
	return m, nil
}

func newBuildCmd(g *globals) *cobra.Command {
	var sets []string
	var noCache, noArtifacts bool
	cmd := &cobra.Command{
		Use:   "build FILE...",
		Short: "Build recipes (and their parent chains) into OCI images",
		Long: `Build each recipe after its parent chain into containers/storage. A layer
whose cache key (parent image, canonical recipe, copied files) is unchanged is
reused without running anything. Bootable images (with a boot: section) get
their boot artifacts built too.`,
		Example: `  imgctl build layers/compute-slurm.yaml
  imgctl build --set APT_MIRROR=http://mirror.example/debian layers/base.yaml
  imgctl build -o json --no-cache layers/compute-base.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := parseSet(sets)
			if err != nil {
				return err
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			var recipes []*recipe.Recipe
			for _, f := range args {
				r, err := recipe.Load(f, recipe.Vars{Set: set, Lookup: os.LookupEnv})
				if err != nil {
					return err
				}
				recipes = append(recipes, r)
			}
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			b := builder.New(store, builder.Options{Log: g.logger(), Progress: g.progressWriter(), NoCache: noCache})
			var all, tops []builder.Result
			seen := map[string]bool{}
			for _, r := range recipes {
				res, err := b.Build(cmd.Context(), r)
				if err != nil {
					return err
				}
				tops = append(tops, res[len(res)-1])
				for _, x := range res {
					if !seen[x.Name] {
						seen[x.Name] = true
						all = append(all, x)
					}
				}
			}
			out := buildOutput{Layers: all}
			if !noArtifacts {
				// Artifacts for the images asked for; parents get theirs when built on their own.
				arts, err := g.buildArtifacts(cmd, store, tops)
				if err != nil {
					return err
				}
				out.Artifacts = arts
			}
			rows := [][]string{}
			for _, x := range all {
				state := "built"
				if x.Cached {
					state = "cached"
				}
				rows = append(rows, []string{x.Name, x.Tags[1], x.ImageID[:12], state, fmt.Sprintf("%.1fs", x.Seconds)})
			}
			return p.Table(out, []string{"NAME", "TAG", "IMAGE ID", "STATE", "TIME"}, rows)
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a recipe variable (KEY=VALUE); wins over the environment")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "rebuild every layer of the chain")
	cmd.Flags().BoolVar(&noArtifacts, "no-artifacts", false, "do not build boot artifacts for bootable images")
	return cmd
}

// buildOutput is the -o json|yaml result of imgctl build.
type buildOutput struct {
	Layers    []builder.Result `json:"layers" yaml:"layers"`
	Artifacts []artifactResult `json:"artifacts,omitempty" yaml:"artifacts,omitempty"`
}

// artifactResult names the artifact set built for a bootable image.
type artifactResult struct {
	Name   string `json:"name" yaml:"name"`
	Digest string `json:"image_digest" yaml:"image_digest"`
	Dir    string `json:"dir" yaml:"dir"`
}

func newLintCmd(g *globals) *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Validate recipes and their parent chains without building",
		Example: `  imgctl lint layers/*.yaml
  imgctl lint --set IMGCTL_REGISTRY=registry.local:5000 layers/compute-slurm.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := parseSet(sets)
			if err != nil {
				return err
			}
			failed := 0
			for _, f := range args {
				if _, err := recipe.Load(f, recipe.Vars{Set: set, Lookup: os.LookupEnv}); err != nil {
					fmt.Fprintln(g.stderr, err)
					failed++
					continue
				}
				fmt.Fprintf(g.stdout, "%s: ok\n", f)
			}
			if failed > 0 {
				fmt.Fprintf(g.stderr, "%d of %d recipes have problems\n", failed, len(args))
				return errSilent
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a recipe variable (KEY=VALUE)")
	return cmd
}
