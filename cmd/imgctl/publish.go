package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/cstore"
)

// registryFlags are the flags publish and pull share.
type registryFlags struct {
	tlsVerify bool
	authFile  string
}

func (f *registryFlags) add(c *cobra.Command) {
	c.Flags().BoolVar(&f.tlsVerify, "tls-verify", true, "verify the registry's TLS certificate and require HTTPS (false for lab registries)")
	c.Flags().StringVar(&f.authFile, "authfile", "", "registry credentials file (default: $REGISTRY_AUTH_FILE, then containers' auth.json locations)")
}

// registryClient opens container storage and returns a client on it; call
// the returned close function when done.
func registryClient(cmd *cobra.Command, g *globals, f *registryFlags) (*registry.Client, func(), error) {
	st, err := cstore.Open(cmd.Context(), g.storage, g.logger())
	if err != nil {
		return nil, nil, err
	}
	return registryClientOn(g, f, st), func() { st.Shutdown(false) }, nil
}

// registryClientOn returns a client on an open container storage.
func registryClientOn(g *globals, f *registryFlags, st storage.Store) *registry.Client {
	var progress io.Writer
	if !g.quiet {
		progress = g.stderr
	}
	return registry.New(registry.Options{
		Storage:   st,
		Artifacts: images.NewStore(g.stateDir),
		TLSVerify: f.tlsVerify,
		AuthFile:  f.authFile,
		CacheDir:  filepath.Join(g.stateDir, "cache", "blob-info"),
		Progress:  progress,
		Log:       g.logger(),
	})
}

func addRegistryCommands(root *cobra.Command, g *globals) {
	root.AddCommand(newPublishCmd(g), newPullCmd(g), newKeyCmd(g))
}

func newPublishCmd(g *globals) *cobra.Command {
	var rf registryFlags
	var req registry.PublishRequest
	var signKey string
	c := &cobra.Command{
		Use:   "publish IMAGE",
		Short: "Push an image and its boot artifacts to an OCI registry",
		Long: `publish pushes IMAGE from container storage to a registry, and its boot
artifacts (kernel, initramfs, root image, manifest) as an OCI artifact linked to
it (tag sha256-<digest>.imgctl; see docs/registry.md). Registry and tags default
to the recipe's publish: section. Tags are templates: {{ .Name }}, {{ .Date }},
{{ .CacheKey }}, {{ .FullCacheKey }}. Blobs the registry has are not sent again.`,
		Example: `  imgctl publish compute-base
  imgctl publish compute-base --registry 127.0.0.1:5000/cluster --tag latest --tag '{{ .Date }}' --tls-verify=false
  imgctl publish compute-base --dry-run -o json
  imgctl publish compute-base --sign-key /etc/imgctl/sign.key`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Image = args[0]
			if signKey != "" {
				k, err := registry.ReadPrivateKey(signKey)
				if err != nil {
					return err
				}
				req.SignKey = k
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			client, done, err := registryClient(cmd, g, &rf)
			if err != nil {
				return err
			}
			defer done()
			res, err := client.Publish(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("publish %s: %w", req.Image, err)
			}
			return p.Value(res, func(w io.Writer) error { return printPublish(w, res) })
		},
	}
	rf.add(c)
	c.Flags().StringVar(&req.Registry, "registry", "", "repository prefix, e.g. registry.example:5000/cluster (default: the recipe's publish.registry)")
	c.Flags().StringArrayVar(&req.Tags, "tag", nil, "tag template, repeatable (default: the recipe's publish.tags, else latest)")
	c.Flags().BoolVar(&req.DryRun, "dry-run", false, "list the blobs and tags that would be pushed, push nothing")
	c.Flags().StringVar(&signKey, "sign-key", "", "ed25519 private key (imgctl key generate) to sign image and artifacts with")
	return c
}

func printPublish(w io.Writer, r *registry.PublishResult) error {
	verb := "published"
	if r.DryRun {
		verb = "would publish"
	}
	fmt.Fprintf(w, "%s %s (image %.12s) to %s\n", verb, r.Name, r.ImageID, r.Repository)
	for _, t := range r.Tags {
		fmt.Fprintf(w, "  tag %s:%s\n", r.Repository, t)
	}
	if r.ImageDigest != "" {
		fmt.Fprintf(w, "  image digest      %s\n", r.ImageDigest)
	}
	if r.ArtifactsTag != "" {
		fmt.Fprintf(w, "  artifacts         %s:%s (%s, %d blobs uploaded)\n", r.Repository, r.ArtifactsTag, r.ArtifactsDigest, r.UploadedArtifactBlobs)
	}
	if r.SignatureTag != "" {
		fmt.Fprintf(w, "  signature         %s:%s\n", r.Repository, r.SignatureTag)
	}
	if r.DryRun {
		fmt.Fprintln(w, "KIND      NAME             SIZE        DIGEST")
		for _, b := range r.Blobs {
			name := b.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(w, "%-9s %-16s %-11s %s\n", b.Kind, name, strconv.FormatInt(b.Size, 10), b.Digest)
		}
	}
	return nil
}

func newPullCmd(g *globals) *cobra.Command {
	var rf registryFlags
	var verifyKey string
	c := &cobra.Command{
		Use:   "pull REF",
		Short: "Fetch an image and its boot artifacts from an OCI registry",
		Long: `pull copies the image at REF into container storage and its boot artifacts
into the state directory, checking every blob digest, the sha256 of every
artifact and each root image piece, and (with --verify-key) the signature. The
set is installed atomically and made current, ready for imgctl serve.`,
		Example: `  imgctl pull registry.example:5000/cluster/compute-base:latest
  imgctl --state /srv/imgctl pull 127.0.0.1:5000/cluster/compute-base:20261122 --tls-verify=false
  imgctl pull registry.example:5000/cluster/compute-base --verify-key /etc/imgctl/sign.key.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := registry.PullRequest{Ref: args[0]}
			if verifyKey != "" {
				k, err := registry.ReadPublicKey(verifyKey)
				if err != nil {
					return err
				}
				req.VerifyKey = k
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			client, done, err := registryClient(cmd, g, &rf)
			if err != nil {
				return err
			}
			defer done()
			res, err := client.Pull(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("pull %s: %w", req.Ref, err)
			}
			return p.Value(res, func(w io.Writer) error {
				fmt.Fprintf(w, "pulled %s (%s) as image %.12s\n", res.Ref, res.ImageDigest, res.ImageID)
				if res.Artifacts != nil {
					fmt.Fprintf(w, "  artifacts %s (verified)\n", res.Artifacts.Dir)
				} else {
					fmt.Fprintln(w, "  no boot artifacts")
				}
				if res.Verified {
					fmt.Fprintln(w, "  signature verified")
				}
				return nil
			})
		},
	}
	rf.add(c)
	c.Flags().StringVar(&verifyKey, "verify-key", "", "ed25519 public key; refuse the pull unless signed with it")
	return c
}

func newKeyCmd(g *globals) *cobra.Command {
	key := &cobra.Command{
		Use:     "key",
		Short:   "Manage signing keys for publish and pull",
		Example: "  imgctl key generate /etc/imgctl/sign.key",
	}
	key.AddCommand(&cobra.Command{
		Use:   "generate FILE",
		Short: "Create an ed25519 key pair: FILE (private, 0600) and FILE.pub",
		Example: `  imgctl key generate /etc/imgctl/sign.key
  imgctl publish compute-base --sign-key /etc/imgctl/sign.key
  imgctl pull REF --verify-key /etc/imgctl/sign.key.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := registry.GenerateKey(args[0])
			if err != nil {
				return err
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			out := struct {
				Private string `json:"private"`
				Public  string `json:"public"`
				KeyID   string `json:"key_id"`
			}{args[0], args[0] + ".pub", registry.KeyID(ed25519.PublicKey(pub))}
			return p.Value(out, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "wrote %s and %s (key %s)\n", out.Private, out.Public, out.KeyID)
				return err
			})
		},
	})
	return key
}
