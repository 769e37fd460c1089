package main

import (
	"github.com/spf13/cobra"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
)

// buildArtifacts flattens every bootable image among results into boot artifacts.
func (g *globals) buildArtifacts(cmd *cobra.Command, store storage.Store, results []builder.Result) ([]artifactResult, error) {
	var out []artifactResult
	for _, r := range results {
		if !r.Bootable {
			continue
		}
		e, err := g.flatten(cmd, store, r.ImageID, false)
		if err != nil {
			return nil, err
		}
		out = append(out, artifactResult{Name: e.Manifest.Name, Digest: e.Manifest.ImageDigest, Dir: e.Dir})
	}
	return out, nil
}

// flatten builds (or reuses) the artifact set of one image in storage.
func (g *globals) flatten(cmd *cobra.Command, store storage.Store, ref string, force bool) (*images.Entry, error) {
	src, err := builder.Source(cmd.Context(), store, ref, g.logger())
	if err != nil {
		return nil, err
	}
	return artifacts.Build(cmd.Context(), src, images.NewStore(g.stateDir), artifacts.Options{
		StateDir: g.stateDir, Log: g.logger(), Progress: g.progressWriter(), Force: force,
	})
}
