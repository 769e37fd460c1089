package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/builder/capture"
	"github.com/imgctl/imgctl/internal/output"
)

// captureInventoryNode fills in what the inventory knows when the target is
// one of its nodes: the address, imgctl's own host key for it, the parent (the
// node's image) and the name, each unless given on the command line. A host
// that is no node is left as it is.
func captureInventoryNode(cmd *cobra.Command, g *globals, t *capture.Target, o *capture.Options) (cleanup func(), err error) {
	cleanup = func() {}
	ctx := cmd.Context()
	st, err := g.openBootStore(ctx)
	if err != nil {
		return cleanup, err
	}
	defer st.Close()
	n, err := st.Node(ctx, t.Host)
	if errors.Is(err, store.ErrNotFound) {
		return cleanup, nil
	}
	if err != nil {
		return cleanup, err
	}
	if n.IP == "" {
		return cleanup, fmt.Errorf("capture %s: the node has no ip in the inventory", n.Name)
	}
	t.Host = n.IP
	if o.Name == "" {
		o.Name = n.Name
	}
	if !cmd.Flags().Changed("parent") && n.Image != "" {
		o.Parent = "imgctl/" + n.Image
	}
	if o.SSH.KnownHosts != "" || o.SSH.InsecureHostKey {
		return cleanup, nil
	}
	pub, err := st.PublicHostKey(ctx, n.Name)
	if err != nil {
		return cleanup, fmt.Errorf("capture %s: no host key of imgctl's for it (has it booted through imgctl serve?): %w", n.Name, err)
	}
	host := n.IP
	if t.Port != 22 {
		host = "[" + n.IP + "]:" + strconv.Itoa(t.Port)
	}
	if ip := net.ParseIP(n.IP); ip == nil {
		return cleanup, fmt.Errorf("capture %s: bad inventory ip %q", n.Name, n.IP)
	}
	dir, err := os.MkdirTemp("", "imgctl-capture-")
	if err != nil {
		return cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(host+" "+strings.TrimSpace(string(pub))+"\n"), 0o600); err != nil {
		return cleanup, err
	}
	o.SSH.KnownHosts = kh
	return cleanup, nil
}

func addCaptureCommand(root *cobra.Command, g *globals) {
	var o capture.Options
	cmd := &cobra.Command{
		Use:   "capture [USER@]NODE|HOST[:PORT] [--name NAME]",
		Short: "Turn a hand-tuned node into an image (whole, or as a differential layer)",
		Long: `Stream a running node's root filesystem over SSH (GNU tar on the node: one
file system, owners, modes, xattrs incl. file capabilities, ACLs, hard links,
device nodes, sparse files) into a new image imgctl/NAME. With --parent only
files that differ from the parent, plus whiteouts for removed ones, form the
new layer. /proc, /sys, /dev, /run, /tmp, /var/tmp, package caches, logs and
SSH host keys are left out; /etc/machine-id is emptied; the node's
/etc/imgctl/capture-exclude adds more.

When NODE is an inventory node, its address comes from the inventory, its host
key is checked against the one imgctl gave it (imgctl node known-hosts), the
parent defaults to the node's image (a differential capture; --parent "" for a
whole one) and the name to the node's. For any other HOST the name defaults to
the host name and the host key is checked against known_hosts.`,
		Example: `  imgctl capture golden01
  imgctl capture root@10.0.0.5 --name compute-golden
  imgctl capture golden01 --name compute-golden-2 --parent imgctl/compute-base -i ~/.ssh/id_ed25519
  imgctl capture golden01:2222 --name lab --insecure-host-key --exclude /scratch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := capture.ParseTarget(args[0])
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			cleanup, err := captureInventoryNode(cmd, g, &target, &o)
			if err != nil {
				return err
			}
			defer cleanup()
			if o.Name == "" {
				o.Name = strings.SplitN(target.Host, ".", 2)[0]
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
				fmt.Fprintf(w, "files %d, streamed %s, layer %s\n", res.Files, output.Bytes(res.Bytes), output.Bytes(res.LayerBytes))
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
