package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/builder/capture"
)

func addCaptureCommand(root *cobra.Command, g *globals) {
	var o capture.Options
	cmd := &cobra.Command{
		Use:   "capture [USER@]HOST[:PORT] --name NAME",
		Short: "Turn a hand-tuned node into an image (whole, or as a differential layer)",
		Long: `Stream a running node's root filesystem over SSH (GNU tar on the node: one
file system, owners, modes, xattrs incl. file capabilities, ACLs, hard links,
device nodes, sparse files) into a new image imgctl/NAME. With --parent only
files that differ from the parent, plus whiteouts for removed ones, form the
new layer. /proc, /sys, /dev, /run, /tmp, /var/tmp, package caches, logs and
SSH host keys are left out; /etc/machine-id is emptied; the node's
/etc/imgctl/capture-exclude adds more.`,
		Example: `  imgctl capture root@golden01 --name compute-golden
  imgctl capture golden01 --name compute-golden-2 --parent imgctl/compute-base -i ~/.ssh/id_ed25519
  imgctl capture golden01:2222 --name lab --insecure-host-key --exclude /scratch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Name == "" {
				return &usageError{msg: "capture needs --name NAME"}
			}
			target, err := capture.ParseTarget(args[0])
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			store, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer store.Shutdown(false)
			o.Progress, o.Log = g.progressWriter(), g.logger()
			res, err := capture.Capture(cmd.Context(), store, target, o)
			if err != nil {
				return err
			}
			return p.Value(res, func(w io.Writer) error {
				fmt.Fprintf(w, "captured %s as %s (%s)\n", res.Host, res.Tags[0], res.ImageID[:12])
				fmt.Fprintf(w, "files %d, streamed %s, layer %s\n", res.Files, humanBytes(res.Bytes), humanBytes(res.LayerBytes))
				if res.Parent != "" {
					fmt.Fprintf(w, "against %s: %d added, %d changed, %d removed, %d unchanged\n", res.Parent, res.Added, res.Changed, res.Removed, res.Unchanged)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "image name (imgctl/NAME)")
	f.StringVar(&o.Parent, "parent", "", "capture only the difference to this image")
	f.StringArrayVar(&o.Excludes, "exclude", nil, "absolute path or glob to leave out (repeatable)")
	f.BoolVar(&o.KeepHostKeys, "keep-host-keys", false, "keep /etc/ssh/ssh_host_* (every booted node would share them)")
	f.StringVar(&o.RemoteRoot, "root", "/", "directory on the node to capture (e.g. a chroot)")
	f.StringVarP(&o.SSH.KeyFile, "identity", "i", "", "SSH private key (default: ssh-agent)")
	f.StringVar(&o.SSH.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	f.BoolVar(&o.SSH.InsecureHostKey, "insecure-host-key", false, "do not check the node's host key (lab nodes only)")
	root.AddCommand(cmd)
}
