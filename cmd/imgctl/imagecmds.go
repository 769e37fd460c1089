package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	is "go.podman.io/image/v5/storage"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/output"
)

func addImageCommands(root *cobra.Command, g *globals) {
	root.AddCommand(newImagesCmd(g), newInspectCmd(g), newRmCmd(g), newExportCmd(g))
}

// imageRow is one image in `imgctl images` output.
type imageRow struct {
	ID       string            `json:"id" yaml:"id"`
	Names    []string          `json:"names" yaml:"names"`
	Recipe   string            `json:"recipe,omitempty" yaml:"recipe,omitempty"`
	CacheKey string            `json:"cache_key,omitempty" yaml:"cache_key,omitempty"`
	Parent   string            `json:"parent,omitempty" yaml:"parent,omitempty"`
	Bootable bool              `json:"bootable" yaml:"bootable"`
	Created  time.Time         `json:"created" yaml:"created"`
	Size     int64             `json:"size" yaml:"size"`
	Labels   map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Layers   []string          `json:"layers,omitempty" yaml:"layers,omitempty"`
}

func newImagesCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "images",
		Short:   "List the images imgctl built (all images with --all)",
		Example: "  imgctl images\n  imgctl images -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			imgs, err := store.Images()
			if err != nil {
				return fmt.Errorf("list images: %w", err)
			}
			var out []imageRow
			var rows [][]string
			for _, img := range imgs {
				src, err := builder.Source(cmd.Context(), store, img.ID, nil)
				if err != nil {
					continue
				}
				labels := src.Labels()
				if !all && labels[images.LabelRecipe] == "" {
					continue
				}
				size, _ := store.ImageSize(img.ID)
				r := imageRow{ID: img.ID, Names: img.Names, Recipe: labels[images.LabelRecipe], CacheKey: labels[images.LabelCacheKey],
					Parent: labels[images.LabelParent], Bootable: labels[images.LabelBoot] != "", Created: img.Created, Size: size}
				out = append(out, r)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
			for _, r := range out {
				rows = append(rows, []string{strings.Join(r.Names, ","), r.ID[:12], yesNo(r.Bootable), r.Created.Local().Format("2006-01-02 15:04"), output.Bytes(r.Size)})
			}
			if out == nil {
				out = []imageRow{}
			}
			return p.Table(out, []string{"NAMES", "IMAGE ID", "BOOTABLE", "CREATED", "SIZE"}, rows)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list images not built by imgctl")
	return cmd
}

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect IMAGE",
		Short:   "Show an image's names, labels, layers and recipe metadata",
		Example: "  imgctl inspect imgctl/compute-slurm:latest\n  imgctl inspect compute-base -o yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			if !p.Structured() {
				p, _ = g.printerFor("json")
			}
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			img, err := builder.LookupImage(store, args[0])
			if err != nil {
				return err
			}
			src, err := builder.Source(cmd.Context(), store, img.ID, nil)
			if err != nil {
				return err
			}
			size, _ := store.ImageSize(img.ID)
			labels := src.Labels()
			r := imageRow{ID: img.ID, Names: img.Names, Recipe: labels[images.LabelRecipe], CacheKey: labels[images.LabelCacheKey],
				Parent: labels[images.LabelParent], Bootable: labels[images.LabelBoot] != "", Created: img.Created, Size: size, Labels: labels}
			for l := img.TopLayer; l != ""; {
				r.Layers = append([]string{l}, r.Layers...)
				layer, err := store.Layer(l)
				if err != nil {
					break
				}
				l = layer.Parent
			}
			return p.Value(r, nil)
		},
	}
}

func newRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm IMAGE...",
		Short:   "Remove images from storage (layers still used by other images stay)",
		Example: "  imgctl rm imgctl/compute-slurm:latest",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			failed := false
			for _, a := range args {
				img, err := builder.LookupImage(store, a)
				if err == nil {
					_, err = store.DeleteImage(img.ID, true)
				}
				if err != nil {
					fmt.Fprintf(g.stderr, "rm %s: %v\n", a, err)
					failed = true
					continue
				}
				fmt.Fprintf(g.stdout, "removed %s (%s)\n", a, img.ID[:12])
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
}

func newExportCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "export IMAGE --oci DIR",
		Short:   "Write an image to an OCI image layout directory",
		Example: "  imgctl export imgctl/compute-slurm:latest --oci /tmp/slurm-oci\n  skopeo inspect oci:/tmp/slurm-oci",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return &usageError{msg: "export needs --oci DIR"}
			}
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			img, err := builder.LookupImage(store, args[0])
			if err != nil {
				return err
			}
			src, err := is.Transport.NewStoreReference(store, nil, img.ID)
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return err
			}
			// The layout's tag is the one the user named (or latest).
			tag := "latest"
			if last := args[0][strings.LastIndex(args[0], "/")+1:]; strings.Contains(last, ":") {
				tag = last[strings.LastIndex(last, ":")+1:]
			}
			dest, err := layout.NewReference(abs, tag)
			if err != nil {
				return err
			}
			policy, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
			if err != nil {
				return err
			}
			defer policy.Destroy()
			if _, err := copy.Image(cmd.Context(), policy, dest, src, &copy.Options{ReportWriter: g.progressWriter()}); err != nil {
				return fmt.Errorf("export %s: %w", args[0], err)
			}
			fmt.Fprintf(g.stdout, "exported %s to %s (tag %s)\n", args[0], abs, tag)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "oci", "", "OCI image layout directory to write")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
