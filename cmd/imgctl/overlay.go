package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/images/overlay"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

func addOverlayCommands(root *cobra.Command, g *globals) {
	cmd := &cobra.Command{
		Use:   "overlay",
		Short: "Per-node overlays: templated files packed as a second initrd",
	}
	var varsFile, image, out, compression string
	var dirs []string
	render := &cobra.Command{
		Use:   "render NODE",
		Short: "Render a node's overlay archive (newc cpio, compressed)",
		Long: `Render the overlay templates of an image's artifact set (its /etc/imgctl/overlay)
and of --overlay directories (later wins) for one node. Files ending in .tmpl
are Go text/templates over the node's data: .Node, .Hostname, .IP, .MAC, .Image,
.ImageDigest, .Vars, .SSHAuthorizedKeys.`,
		Example: `  imgctl overlay render nid001 --vars nid001.yaml --image compute-base -O nid001.cpio.zst
  imgctl overlay render nid001 --vars vars.yaml --overlay site/overlay --compression none -O - | cpio -itv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := overlay.Data{Node: args[0]}
			if varsFile != "" {
				b, err := os.ReadFile(varsFile)
				if err != nil {
					return err
				}
				dec := yaml.NewDecoder(bytes.NewReader(b))
				dec.KnownFields(true)
				if err := dec.Decode(&data); err != nil && err != io.EOF {
					return fmt.Errorf("%s: %w", varsFile, err)
				}
				data.Node = args[0]
			}
			var sources []string
			if image != "" {
				e, err := lookupEntry(g, image)
				if err != nil {
					return err
				}
				sources = append(sources, filepath.Join(e.Dir, artifacts.OverlayDir))
				data.Image, data.ImageDigest = e.Manifest.Name, e.Manifest.ImageDigest
			}
			sources = append(sources, dirs...)
			if out == "" || out == "-" {
				return overlay.Render(cmd.Context(), sources, data, g.stdout, compression)
			}
			return atomicfile.Write(out, 0o600, func(w io.Writer) error {
				return overlay.Render(cmd.Context(), sources, data, w, compression)
			})
		},
	}
	render.Flags().StringVar(&varsFile, "vars", "", "YAML file with the node's data (hostname, ip, mac, vars, ssh_authorized_keys)")
	render.Flags().StringVar(&image, "image", "", "artifact set whose overlay templates to use (NAME or NAME@DIGEST)")
	render.Flags().StringArrayVar(&dirs, "overlay", nil, "extra overlay template directory (repeatable; later wins)")
	render.Flags().StringVarP(&out, "out", "O", "", "output file (default: stdout); written 0600, it may hold secrets")
	render.Flags().StringVar(&compression, "compression", "zstd", "zstd, gzip or none")
	cmd.AddCommand(render)
	root.AddCommand(cmd)
}
