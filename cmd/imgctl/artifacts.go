package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/output"
)

func addArtifactCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "Boot artifacts of images: kernel, initramfs, root image, manifest",
		Example: `  imgctl artifacts build imgctl/compute-base:latest
  imgctl artifacts ls -o json
  imgctl artifacts verify compute-base`,
	}
	cmd.AddCommand(newArtifactsBuildCmd(g), newArtifactsLsCmd(g), newArtifactsInspectCmd(g), newArtifactsVerifyCmd(g), newArtifactsRmCmd(g))
	root.AddCommand(cmd)
}

func newArtifactsBuildCmd(g *globals) *cobra.Command {
	var force bool
	var rootfs, name string
	cmd := &cobra.Command{
		Use:   "build [IMAGE]",
		Short: "Flatten an image (or a root directory) into boot artifacts",
		Example: `  imgctl artifacts build imgctl/compute-base:latest
  imgctl artifacts build --rootfs /srv/roots/test --name test`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			var e *images.Entry
			switch {
			case rootfs != "" && len(args) == 0:
				if name == "" {
					return &usageError{msg: "--rootfs needs --name"}
				}
				digest, err2 := images.DirDigest(cmd.Context(), rootfs)
				if err2 != nil {
					return err2
				}
				src := &images.DirSource{Root: rootfs, ImageName: name, ImageDigest: digest}
				e, err = artifacts.Build(cmd.Context(), src, images.NewStore(g.stateDir), artifacts.Options{StateDir: g.stateDir, Log: g.logger(), Progress: g.progressWriter(), Force: force})
			case rootfs == "" && len(args) == 1:
				store, err2 := g.openStore(cmd)
				if err2 != nil {
					return err2
				}
				defer store.Shutdown(false)
				e, err = g.flatten(cmd, store, args[0], force)
			default:
				return &usageError{msg: "give an IMAGE, or --rootfs DIR --name NAME"}
			}
			if err != nil {
				return err
			}
			return printEntry(g, p, e)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even when artifacts for this image digest exist")
	cmd.Flags().StringVar(&rootfs, "rootfs", "", "flatten this root directory instead of an image")
	cmd.Flags().StringVar(&name, "name", "", "artifact name for --rootfs")
	return cmd
}

func newArtifactsLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List stored artifact sets",
		Example: "  imgctl artifacts ls\n  imgctl artifacts ls -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			entries, err := images.NewStore(g.stateDir).List(cmd.Context())
			if err != nil {
				return err
			}
			var rows [][]string
			for _, e := range entries {
				m := e.Manifest
				rows = append(rows, []string{m.Name, shortDigest(m.ImageDigest), yesNo(e.Current), m.KernelVersion,
					output.Bytes(m.Artifacts[images.RootFS].Size), m.Created.Local().Format("2006-01-02 15:04")})
			}
			if entries == nil {
				entries = []images.Entry{}
			}
			return p.Table(entries, []string{"NAME", "IMAGE DIGEST", "CURRENT", "KERNEL", "ROOT", "CREATED"}, rows)
		},
	}
}

// lookupEntry resolves NAME or NAME@DIGEST to a stored set.
func lookupEntry(g *globals, arg string) (*images.Entry, error) {
	st := images.NewStore(g.stateDir)
	if name, digest, ok := strings.Cut(arg, "@"); ok {
		e, err := st.Get(name, digest)
		if errors.Is(err, images.ErrNotFound) {
			// Allow a digest prefix, as printed by `artifacts ls`.
			entries, _ := st.List(context.Background())
			for _, c := range entries {
				if c.Manifest.Name == name && strings.HasPrefix(images.DigestHex(c.Manifest.ImageDigest), images.DigestHex(digest)) {
					return &c, nil
				}
			}
		}
		return e, err
	}
	return st.Current(arg)
}

func newArtifactsInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect NAME[@DIGEST]",
		Short:   "Show an artifact set's manifest",
		Example: "  imgctl artifacts inspect compute-base\n  imgctl artifacts inspect compute-base@3f2a9c1d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := lookupEntry(g, args[0])
			if err != nil {
				return err
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			return printEntry(g, p, e)
		},
	}
}

func newArtifactsVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "verify NAME[@DIGEST]...",
		Short:   "Re-hash artifact sets against their manifests; non-zero exit if any differs",
		Example: "  imgctl artifacts verify compute-base compute-slurm",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, a := range args {
				e, err := lookupEntry(g, a)
				if err == nil {
					err = e.Verify(cmd.Context())
				}
				if err != nil {
					failed = true
					fmt.Fprintf(g.stderr, "%s: CORRUPT\n  %s\n", a, strings.ReplaceAll(err.Error(), "\n", "\n  "))
					continue
				}
				fmt.Fprintf(g.stdout, "%s@%s: ok\n", e.Manifest.Name, shortDigest(e.Manifest.ImageDigest))
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
}

func newArtifactsRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME@DIGEST...",
		Short:   "Remove artifact sets",
		Example: "  imgctl artifacts rm compute-base@3f2a9c1d",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				e, err := lookupEntry(g, a)
				if err != nil {
					return err
				}
				if err := images.NewStore(g.stateDir).Remove(e.Manifest.Name, e.Manifest.ImageDigest); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "removed %s@%s\n", e.Manifest.Name, shortDigest(e.Manifest.ImageDigest))
			}
			return nil
		},
	}
}

// printEntry prints an artifact set: its manifest as JSON/YAML, or a summary.
func printEntry(g *globals, p *output.Printer, e *images.Entry) error {
	return p.Value(e, func(w io.Writer) error {
		m := e.Manifest
		fmt.Fprintf(w, "name:      %s\nimage:     %s (%s)\nkernel:    %s\ncmdline:   %s\ndir:       %s\ncurrent:   %s\n",
			m.Name, m.ImageDigest, m.ImageRef, m.KernelVersion, m.Cmdline, e.Dir, yesNo(e.Current))
		for _, k := range []string{images.Kernel, images.Initramfs, images.RootFS} {
			a := m.Artifacts[k]
			fmt.Fprintf(w, "%-10s %-18s %10s  sha256:%s\n", k+":", a.File, output.Bytes(a.Size), a.SHA256)
		}
		fmt.Fprintf(w, "root:      %s/%s, %d pieces of %s\n", m.Root.Format, m.Root.Compression, len(m.Root.Pieces), output.Bytes(m.Root.PieceSize))
		return nil
	})
}

func shortDigest(d string) string {
	h := images.DigestHex(d)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
