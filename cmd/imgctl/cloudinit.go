package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/store"
)

func addCloudInitCommands(root *cobra.Command, g *globals) {
	c := &cobra.Command{
		Use:   "cloud-init",
		Short: "Manage the cloud-init data (NoCloud) nodes get from the boot service",
		Long: `Each group and node holds cloud-init user-data, meta-data, vendor-data and
network-config, plus a secure part (keys, certificates) served only to the
node itself. A node gets its groups' data in its group order, then its own;
top-level keys of a later record replace earlier ones, or, with merge: deep,
mappings merge and lists (write_files, runcmd, packages) append. meta-data
always carries instance-id (new when the node's image changes),
local-hostname and cluster-name unless set. Nodes with data boot with
ds=nocloud-net;s=http://SERVER/cloud-init/<token>/ on their command line.

FILE is a #cloud-config (or ## template: jinja, #!) body for user-data, the
OpenCHAMI payload {name, cloud-init: {userdata, metadata, vendordata}}, or
{user-data, meta-data, vendor-data, network-config, merge, disabled}.`,
		Example: `  imgctl cloud-init set compute -f compute.yaml
  imgctl cloud-init set compute --secure -f munge.yaml
  imgctl cloud-init set 'nid[001-004]' -f nodes.yaml
  imgctl cloud-init get nid001 --render user-data
  imgctl cloud-init ls -o json`,
	}
	c.AddCommand(newCloudInitSetCmd(g), newCloudInitGetCmd(g), newCloudInitLsCmd(g), newCloudInitRmCmd(g))
	root.AddCommand(c)
}

func newCloudInitSetCmd(g *globals) *cobra.Command {
	var file string
	var secure bool
	c := &cobra.Command{
		Use:   "set [GROUP|NODES] -f FILE",
		Short: "Store a group's or nodes' cloud-init data (replacing what they had)",
		Long: `Stores FILE for a group, or for each node of a hostlist; without a target,
the OpenCHAMI payload's name (a group, else a node). The data is validated
first: YAML errors name the line and key.`,
		Example: "  imgctl cloud-init set compute -f compute.yaml\n  imgctl cloud-init set nid001 --secure -f munge.yaml",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return &usageError{msg: "cloud-init set: -f FILE is required"}
			}
			b, err := readFileOrStdin(g, file)
			if err != nil {
				return err
			}
			name, d, err := cloudinit.Parse(orStdin(file), b)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				name = args[0]
			}
			if name == "" {
				return &usageError{msg: "cloud-init set: name a group or nodes (FILE has no name)"}
			}
			ctx := cmd.Context()
			return g.withStore(ctx, func(s store.Store) error {
				inv, err := s.Snapshot(ctx)
				if err != nil {
					return err
				}
				keys, err := cloudinit.Targets(inv, name, secure, false)
				if err != nil {
					return err
				}
				for _, k := range keys {
					if err := s.PutCloudInit(ctx, k, d); err != nil {
						return err
					}
				}
				if !g.quiet {
					fmt.Fprintf(g.stderr, "stored %s for %s\n", strings.Join(d.Files(), ", "), describeKeys(keys))
				}
				return nil
			})
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the data ('-' for stdin)")
	c.Flags().BoolVar(&secure, "secure", false, "store the secure part (served only to the node itself)")
	return c
}

func newCloudInitGetCmd(g *globals) *cobra.Command {
	var secure bool
	var render string
	c := &cobra.Command{
		Use:   "get GROUP|NODE",
		Short: "Print a group's or node's stored cloud-init data, or a file as rendered",
		Long: `Prints the stored record (the public part, or the secure one with --secure).
With --render FILE (meta-data, user-data, vendor-data, network-config) prints
that file as the boot service serves it: for a node merged from its groups
and itself (secure parts included with --secure), for a group its own data.
meta-data's default cluster-name here is this host's name, as a boot service
without http.cloud_init.cluster_name serves it.`,
		Example: "  imgctl cloud-init get compute\n  imgctl cloud-init get nid001 --render user-data --secure",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if render != "" && !cloudinit.IsFile(render) {
				return &usageError{msg: fmt.Sprintf("--render %q: want meta-data, user-data, vendor-data or network-config", render)}
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return g.withStore(ctx, func(s store.Store) error {
				inv, err := s.Snapshot(ctx)
				if err != nil {
					return err
				}
				keys, err := cloudinit.Targets(inv, args[0], secure, false)
				if err != nil {
					return err
				}
				if len(keys) != 1 {
					return &usageError{msg: "cloud-init get: name one group or node"}
				}
				k := keys[0]
				if render != "" {
					t := cloudinit.Target{Group: k.Name, Secure: secure, ClusterName: previewClusterName()}
					if k.Scope == cloudinit.Node {
						n, err := s.Node(ctx, k.Name)
						if err != nil {
							return err
						}
						t.Node, t.Image = &n, n.Image
						if d := currentDigests(g.stateDir)(n.Image); d != "" {
							t.Image = d
						}
					}
					files, err := cloudinit.ForTarget(ctx, s, t)
					if err != nil {
						return err
					}
					body, ok := files[render]
					if !ok {
						return fmt.Errorf("%s: no %s", k, render)
					}
					return p.Value(map[string]string{render: string(body)}, func(w io.Writer) error { _, err := w.Write(body); return err })
				}
				d, err := s.CloudInit(ctx, k)
				if err != nil {
					return err
				}
				if d.IsZero() {
					return fmt.Errorf("no cloud-init data for %s", k)
				}
				return p.Value(d, func(w io.Writer) error {
					b, err := yaml.Marshal(d)
					if err == nil {
						_, err = w.Write(b)
					}
					return err
				})
			})
		},
	}
	c.Flags().BoolVar(&secure, "secure", false, "the secure part")
	c.Flags().StringVar(&render, "render", "", "print this file as served: meta-data, user-data, vendor-data or network-config")
	return c
}

// cloudInitRow is one record in `cloud-init ls`.
type cloudInitRow struct {
	cloudinit.Key `yaml:",inline"`
	Files         []string            `json:"files" yaml:"files"`
	Merge         cloudinit.MergeMode `json:"merge,omitempty" yaml:"merge,omitempty"`
	Disabled      bool                `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

func newCloudInitLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List the stored cloud-init records (which files, never their content)",
		Example: "  imgctl cloud-init ls\n  imgctl cloud-init ls -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var list []cloudInitRow
			err = g.withStore(ctx, func(s store.Store) error {
				recs, err := store.ExportCloudInit(ctx, s)
				for _, r := range recs {
					list = append(list, cloudInitRow{Key: r.Key, Files: r.Data.Files(), Merge: r.Data.Merge, Disabled: r.Data.Disabled})
				}
				return err
			})
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(list))
			for _, r := range list {
				part, merge := "public", string(r.Merge)
				if r.Secure {
					part = "secure"
				}
				if merge == "" {
					merge = string(cloudinit.Replace)
				}
				if r.Disabled {
					merge += " (seed disabled)"
				}
				rows = append(rows, []string{string(r.Scope), r.Name, part, dash(strings.Join(r.Files, ",")), merge})
			}
			return p.Table(list, []string{"SCOPE", "NAME", "PART", "FILES", "MERGE"}, rows)
		},
	}
}

func newCloudInitRmCmd(g *globals) *cobra.Command {
	var secure bool
	c := &cobra.Command{
		Use:     "rm GROUP|NODES...",
		Short:   "Remove a group's or nodes' cloud-init data (the public part, or --secure)",
		Example: "  imgctl cloud-init rm compute\n  imgctl cloud-init rm 'nid[001-004]' --secure",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withStore(ctx, func(s store.Store) error {
				inv, err := s.Snapshot(ctx)
				if err != nil {
					return err
				}
				var errs []error
				for _, a := range args {
					keys, err := cloudinit.Targets(inv, a, secure, true)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					for _, k := range keys {
						errs = append(errs, s.DeleteCloudInit(ctx, k))
					}
				}
				return errors.Join(errs...)
			})
		},
	}
	c.Flags().BoolVar(&secure, "secure", false, "remove the secure part")
	return c
}

func describeKeys(keys []cloudinit.Key) string {
	if len(keys) == 1 {
		return keys[0].String()
	}
	return fmt.Sprintf("%d nodes", len(keys))
}

func readFileOrStdin(g *globals, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(g.stdin)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cloud-init: %w", err)
	}
	return b, nil
}

// previewClusterName is the cluster-name a boot service without
// http.cloud_init.cluster_name serves: this host's name.
func previewClusterName() string {
	h, _ := os.Hostname()
	return h
}
