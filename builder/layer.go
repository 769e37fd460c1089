package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/builder/recipe"
	"github.com/imgctl/imgctl/images"
)

// buildLayer builds one recipe on top of its (already built) parent, or reuses
// the image its cache key names.
func (b *Builder) buildLayer(ctx context.Context, r *recipe.Recipe) (*Result, error) {
	start := time.Now()
	parent, err := b.parentImage(r)
	if err != nil {
		return nil, err
	}
	parentID, parentBoot := "scratch", (*images.BootSpec)(nil)
	if parent != nil {
		parentID = parent.ID
		if s, ok := imageLabels(b.store, parent)[images.LabelBoot]; ok {
			parentBoot = new(images.BootSpec)
			if err := json.Unmarshal([]byte(s), parentBoot); err != nil {
				return nil, fmt.Errorf("%s: parent boot label: %w", r.Path, err)
			}
		}
	}
	extra, err := b.extraInputs(r, parentBoot != nil)
	if err != nil {
		return nil, err
	}
	key, err := r.CacheKey(parentID, extra)
	if err != nil {
		return nil, err
	}
	latest, keyed := Tags(r.Name, key)
	res := &Result{Name: r.Name, Recipe: r.Path, CacheKey: key, Tags: []string{latest, keyed}, Bootable: extra != nil}

	if !b.noCache {
		if img, err := LookupImage(b.store, keyed); err == nil && imageLabels(b.store, img)[images.LabelCacheKey] == key {
			if err := b.tag(img, latest); err != nil {
				return nil, err
			}
			res.ImageID, res.Cached = img.ID, true
			res.Seconds = time.Since(start).Seconds()
			b.step(r.Name, "cached %s (%s)", keyed, img.ID[:12])
			return res, nil
		}
	}

	boot := r.EffectiveBoot()
	if boot == nil {
		boot = parentBoot
	}
	id, err := b.run(ctx, r, parent, key, boot, extra)
	if err != nil {
		return nil, err
	}
	res.ImageID = id
	res.Seconds = time.Since(start).Seconds()
	b.step(r.Name, "built %s (%s) in %.1fs", keyed, id[:12], res.Seconds)
	return res, nil
}

// run executes the recipe's steps in a working container and commits it.
// The working container is removed whatever happens; nothing is tagged on error.
func (b *Builder) run(ctx context.Context, r *recipe.Recipe, parent *storage.Image, key string, boot *images.BootSpec, extra map[string][]byte) (string, error) {
	from := "scratch"
	if parent != nil {
		from = parent.ID
	}
	bld, err := NewWorkingContainer(ctx, b.store, from, b.progress)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.Path, err)
	}
	defer func() {
		if err := bld.Delete(); err != nil {
			b.log.Warn("remove working container", "container", bld.ContainerID, "err", err)
		}
	}()

	if r.Bootstrap != nil {
		root, err := bld.Mount("")
		if err != nil {
			return "", fmt.Errorf("%s: mount working container: %w", r.Path, err)
		}
		b.step(r.Name, "bootstrap %s %s", r.Bootstrap.Distro, r.Bootstrap.Suite)
		if err := bootstrap(ctx, r, root, b.progress); err != nil {
			return "", err
		}
	}
	run := func(what string, argv ...string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.step(r.Name, "%s", what)
		return b.runIn(ctx, bld, r, argv)
	}
	if len(r.Repos) > 0 {
		if err := b.addRepos(ctx, bld, r); err != nil {
			return "", err
		}
	}
	if cmd := installCommand(r.EffectivePackageManager(), r.Packages, r.PackageGroups); cmd != "" {
		if err := run("install "+strings.Join(append(append([]string{}, r.Packages...), r.PackageGroups...), " "), "/bin/sh", "-ec", cmd); err != nil {
			return "", err
		}
	}
	for i, f := range r.Files {
		b.step(r.Name, "copy %s → %s", f.Src, f.Dest)
		if err := addFile(bld, r, f); err != nil {
			return "", r.ErrorAt(fmt.Sprintf("files[%d]", i), "copy %s: %v", f.Src, err)
		}
	}
	for k, v := range r.Env {
		bld.SetEnv(k, v)
	}
	for _, c := range r.Run {
		if err := run("run "+c, "/bin/sh", "-ec", c); err != nil {
			return "", err
		}
	}
	if extra != nil {
		b.step(r.Name, "install dracut module 90imgctl and imgctl-agent")
		if err := installBootFiles(bld, extra); err != nil {
			return "", fmt.Errorf("%s: %w", r.Path, err)
		}
	}
	labels, err := labelsFor(r, key, boot)
	if err != nil {
		return "", err
	}
	for k, v := range labels {
		bld.SetLabel(k, v)
	}
	bld.SetHistoryComment("imgctl recipe " + r.Name)
	b.step(r.Name, "commit")
	id, _, err := CommitAs(ctx, b.store, bld, r.Name, key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.Path, err)
	}
	return id, nil
}

// runIn runs argv in the working container with chroot isolation and the host
// network, streaming output; a failure becomes a CommandError.
func (b *Builder) runIn(ctx context.Context, bld *buildah.Builder, r *recipe.Recipe, argv []string) error {
	tail := newTail(20)
	out := io.MultiWriter(b.progress, tail)
	env := []string{"INITRD=No", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range r.Env {
		env = append(env, k+"="+v)
	}
	err := bld.Run(argv, buildah.RunOptions{
		Isolation: define.IsolationChroot,
		Env:       env,
		Stdout:    out,
		Stderr:    out,
		Stdin:     strings.NewReader(""),
		Quiet:     true,
	})
	if err == nil {
		return ctx.Err()
	}
	return &CommandError{Recipe: r.Path, Command: argv[len(argv)-1], Status: err.Error(), Tail: tail.String()}
}

// installCommand is the shell command that installs packages and groups with pm.
func installCommand(pm string, pkgs, groups []string) string {
	if len(pkgs) == 0 && len(groups) == 0 {
		return ""
	}
	q := func(s []string) string {
		out := make([]string, len(s))
		for i, p := range s {
			out[i] = strconv.Quote(p)
		}
		return strings.Join(out, " ")
	}
	switch pm {
	case recipe.Dnf:
		cmd := ""
		if len(groups) > 0 {
			cmd += "dnf -y --setopt=install_weak_deps=False group install " + q(groups) + "\n"
		}
		if len(pkgs) > 0 {
			cmd += "dnf -y --setopt=install_weak_deps=False install " + q(pkgs) + "\n"
		}
		return cmd + "dnf clean all"
	case recipe.Zypper:
		cmd := ""
		if len(groups) > 0 {
			cmd += "zypper --non-interactive install -t pattern " + q(groups) + "\n"
		}
		if len(pkgs) > 0 {
			cmd += "zypper --non-interactive install --no-recommends " + q(pkgs) + "\n"
		}
		return cmd + "zypper clean --all"
	}
	return "apt-get update\napt-get install -y --no-install-recommends " + q(pkgs) + "\napt-get clean\nrm -rf /var/lib/apt/lists/*"
}

// addFile copies one files entry into the working container.
func addFile(bld *buildah.Builder, r *recipe.Recipe, f recipe.File) error {
	opts := buildah.AddAndCopyOptions{ContextDir: r.Dir(), Chown: f.Owner}
	if f.Mode != "" {
		m, _ := strconv.ParseUint(f.Mode, 8, 32)
		opts.Chmod = fmt.Sprintf("%04o", m)
	}
	if opts.Chown == "" {
		opts.Chown = "0:0"
	}
	return bld.Add(f.Dest, false, opts, r.Resolve(f.Src))
}

// commonBuildOptions keeps ulimits within this process's hard limits: buildah's
// defaults (nofile and nproc 1048576) fail with EPERM without CAP_SYS_RESOURCE.
func commonBuildOptions() *define.CommonBuildOptions {
	var limits []string
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}} {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(l.resource, &rl); err == nil && rl.Max > 0 {
			limits = append(limits, fmt.Sprintf("%s=%d:%d", l.name, rl.Max, rl.Max))
		}
	}
	return &define.CommonBuildOptions{Ulimit: limits}
}

// capabilities are what commands in a working container get: the usual
// container default set (what buildah's CLI takes from containers.conf; the
// library gives none unless told), plus MKNOD, which dracut needs to build an
// initramfs. Without SETUID/SETGID apt cannot drop privileges to _apt.
var capabilities = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
	"CAP_AUDIT_WRITE", "CAP_MKNOD"}

// policyPath is the containers signature policy for commits: the system's, or
// an accept-anything policy for hosts that have none (local commits only).
func policyPath() string {
	const sys = "/etc/containers/policy.json"
	if _, err := os.Stat(sys); err == nil {
		return sys
	}
	p := filepath.Join(os.TempDir(), "imgctl-policy.json")
	if err := os.WriteFile(p, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return sys
	}
	return p
}

// tag adds names to an image (moving them off any other image).
func (b *Builder) tag(img *storage.Image, names ...string) error {
	for _, n := range names {
		ref, err := is.Transport.ParseStoreReference(b.store, LocalName(n))
		if err != nil {
			return err
		}
		named := ref.DockerReference()
		if named == nil {
			return fmt.Errorf("tag %s: not a named reference", n)
		}
		if err := b.store.AddNames(img.ID, []string{named.String()}); err != nil {
			return fmt.Errorf("tag %s: %w", n, err)
		}
	}
	return nil
}

// imageLabels reads an image's config labels from the store.
func imageLabels(store storage.Store, img *storage.Image) map[string]string {
	ref, err := is.Transport.NewStoreReference(store, nil, img.ID)
	if err != nil {
		return nil
	}
	src, err := ref.NewImage(context.Background(), nil)
	if err != nil {
		return nil
	}
	defer src.Close()
	info, err := src.Inspect(context.Background())
	if err != nil {
		return nil
	}
	return info.Labels
}
