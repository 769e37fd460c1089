package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path"
	"strings"
	"time"

	"go.podman.io/storage"

	"github.com/imgctl/imgctl/builder"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// DefaultExcludes are never captured: kernel and runtime file systems keep
// their directories but not their contents, and per-node state stays behind.
var DefaultExcludes = []string{
	"/proc/*", "/sys/*", "/dev/*", "/run/*", "/tmp/*", "/var/tmp/*",
	"/var/cache/apt/*", "/var/cache/dnf/*", "/var/log/*", "/lost+found",
}

// hostKeyPattern matches SSH host keys, which identify one node only.
const hostKeyPattern = "/etc/ssh/ssh_host_*"

// machineID is emptied in captures: systemd regenerates it on each node.
const machineID = "/etc/machine-id"

// Options control a capture.
type Options struct {
	Name         string   // image name (imgctl/<Name>)
	Parent       string   // parent image: capture only the difference; "" = full
	Excludes     []string // extra paths or globs (absolute) to leave out
	KeepHostKeys bool     // keep /etc/ssh/ssh_host_*
	RemoteRoot   string   // directory on the node to capture; default "/"
	SSH          SSHOptions
	Progress     io.Writer    // progress lines; nil = none
	Log          *slog.Logger // nil = discard
}

// Result reports a capture.
type Result struct {
	Name       string   `json:"name"`
	Host       string   `json:"host"`
	ImageID    string   `json:"image_id"`
	Tags       []string `json:"tags"`
	Parent     string   `json:"parent,omitempty"`
	Files      int      `json:"files"`       // entries streamed from the node
	Added      int      `json:"added"`       // not in the parent (all, without one)
	Changed    int      `json:"changed"`     // differ from the parent
	Removed    int      `json:"removed"`     // in the parent, gone on the node (whiteouts)
	Unchanged  int      `json:"unchanged"`   // identical to the parent, left out of the layer
	Bytes      int64    `json:"bytes"`       // bytes streamed
	LayerBytes int64    `json:"layer_bytes"` // uncompressed size of the new layer
	Seconds    float64  `json:"seconds"`
}

// errLocalTarEnded is what the filter's writes get once the local tar has
// exited; the tar's own status then says why.
var errLocalTarEnded = errors.New("local tar ended")

// Capture streams the node's root filesystem and commits it as an image in
// store. With opts.Parent the new layer holds only what differs from the
// parent, plus whiteouts for what the node removed. On any failure, including
// cancellation, no image is created and the working container is removed.
func Capture(ctx context.Context, store storage.Store, target Target, opts Options) (*Result, error) {
	log := logging.OrDiscard(opts.Log)
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	if opts.Name == "" {
		return nil, errors.New("capture: a name is required")
	}
	start := time.Now()
	remoteRoot := opts.RemoteRoot
	if remoteRoot == "" {
		remoteRoot = "/"
	}
	from, parentRef := "scratch", ""
	if opts.Parent != "" {
		img, err := builder.LookupImage(store, opts.Parent)
		if err != nil {
			return nil, fmt.Errorf("capture parent: %w", err)
		}
		from, parentRef = img.ID, opts.Parent
	}

	client, err := dial(target, opts.SSH)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	excludes, err := remoteExcludes(func(cmd string) (string, error) { return output(client, cmd) }, remoteRoot, opts)
	if err != nil {
		return nil, err
	}

	bld, err := builder.NewWorkingContainer(ctx, store, from, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := bld.Delete(); err != nil {
			log.Warn("remove capture container", "container", bld.ContainerID, "err", err)
		}
	}()
	root, err := bld.Mount("")
	if err != nil {
		return nil, fmt.Errorf("mount working container: %w", err)
	}

	sess, err := client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var remoteErr strings.Builder
	sess.Stderr = &remoteErr
	cmd := remoteTarCommand(remoteRoot, excludes)
	log.Debug("capture", "host", target.Host, "command", cmd)
	if err := sess.Start(cmd); err != nil {
		return nil, fmt.Errorf("start tar on %s: %w", target.Host, err)
	}
	// Cancelling ends the remote tar, which ends the stream.
	stop := context.AfterFunc(ctx, func() { sess.Close(); client.Close() })
	defer stop()

	// Local GNU tar applies the (filtered) stream to the working container.
	extract := exec.CommandContext(ctx, "tar", "-x", "-p", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "--same-owner", "-f", "-", "-C", root)
	pr, pw := io.Pipe()
	extract.Stdin = pr
	var extractOut strings.Builder
	extract.Stdout, extract.Stderr = &extractOut, &extractOut
	if err := extract.Start(); err != nil {
		return nil, fmt.Errorf("start local tar: %w", err)
	}
	// When the local tar ends early (cancelled, or failed), nothing reads the
	// pipe any more: close it, or the filter blocks on its next write forever.
	extracted := make(chan error, 1)
	go func() {
		err := extract.Wait()
		pr.CloseWithError(errLocalTarEnded)
		extracted <- err
	}()
	key := sha256.New()
	f := &filter{root: root, diff: opts.Parent != "", keepHostKeys: opts.KeepHostKeys, progress: progress, log: log, started: time.Now(), seen: map[string]bool{}}
	filterErr := f.run(ctx, stdout, io.MultiWriter(pw, key))
	pw.CloseWithError(filterErr)
	extractErr := <-extracted
	waitErr := sess.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("capture %s: %w", target.Host, ctx.Err())
	case filterErr != nil && !errors.Is(filterErr, errLocalTarEnded):
		return nil, fmt.Errorf("capture %s: %w", target.Host, filterErr)
	case waitErr != nil:
		return nil, fmt.Errorf("capture %s: remote tar: %v: %s", target.Host, waitErr, strings.TrimSpace(remoteErr.String()))
	case extractErr != nil:
		return nil, fmt.Errorf("capture %s: local tar: %v: %s", target.Host, extractErr, lastLines(extractOut.String(), 10))
	case filterErr != nil: // the local tar ended before the stream did, yet says nothing
		return nil, fmt.Errorf("capture %s: local tar ended before the stream", target.Host)
	}
	if opts.Parent != "" {
		if err := f.removeMissing(ctx, excludes); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(progress, "[capture %s] %d files, %s streamed; committing\n", target.Host, f.files, human(f.bytes))

	bld.SetLabel(images.LabelRecipe, opts.Name)
	bld.SetLabel(images.LabelParent, map[bool]string{true: parentRef, false: "scratch"}[parentRef != ""])
	bld.SetLabel("org.imgctl.captured-from", target.Host)
	bld.SetLabel("org.imgctl.captured-at", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(key, "parent %s\n", from)
	sum := hex.EncodeToString(key.Sum(nil))
	bld.SetLabel(images.LabelCacheKey, sum)
	bld.SetHistoryComment("imgctl capture " + target.Host)
	id, tags, err := builder.CommitAs(ctx, store, bld, opts.Name, sum)
	if err != nil {
		return nil, err
	}
	res := &Result{Name: opts.Name, Host: target.Host, ImageID: id, Tags: tags, Parent: parentRef, Files: f.files,
		Added: f.added, Changed: f.changed, Removed: f.removed, Unchanged: f.unchanged, Bytes: f.bytes, Seconds: time.Since(start).Seconds()}
	if img, err := store.Image(id); err == nil {
		if l, err := store.Layer(img.TopLayer); err == nil {
			res.LayerBytes = l.UncompressedSize
		}
	}
	return res, nil
}

// remoteExcludes merges the default, the node's /etc/imgctl/capture-exclude
// and the caller's exclusions.
func remoteExcludes(run func(cmd string) (string, error), remoteRoot string, opts Options) ([]string, error) {
	ex := append([]string{}, DefaultExcludes...)
	if !opts.KeepHostKeys {
		ex = append(ex, hostKeyPattern)
	}
	out, err := run("cat " + shellQuote(path.Join(remoteRoot, "etc/imgctl/capture-exclude")) + " 2>/dev/null || true")
	if err != nil {
		return nil, fmt.Errorf("read capture-exclude: %w", err)
	}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ex = append(ex, l)
		}
	}
	for _, e := range opts.Excludes {
		if !strings.HasPrefix(e, "/") {
			return nil, fmt.Errorf("exclude %q: give an absolute path", e)
		}
		ex = append(ex, e)
	}
	return ex, nil
}

// remoteTarCommand is GNU tar streaming root's file system to stdout.
func remoteTarCommand(root string, excludes []string) string {
	args := []string{"tar", "--create", "--file=-", "--one-file-system", "--xattrs", "--xattrs-include='*'", "--acls",
		"--numeric-owner", "--sparse", "--preserve-permissions", "--directory=" + shellQuote(root)}
	for _, e := range excludes {
		args = append(args, "--exclude="+shellQuote("."+e))
	}
	return strings.Join(append(args, "."), " ")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
