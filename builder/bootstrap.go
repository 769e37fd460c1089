package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/imgctl/imgctl/builder/recipe"
)

// bootstrap fills the empty root dir with a minimal system for r.Bootstrap:
// Debian and Ubuntu through mmdebstrap (or debootstrap), EL through
// `dnf --installroot`.
func bootstrap(ctx context.Context, r *recipe.Recipe, dir string, out io.Writer) error {
	b := r.Bootstrap
	mirror := b.Mirror
	if mirror == "" && b.Distro != "el" {
		m, err := HostMirror(b.Distro)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Path, err)
		}
		mirror = m
	}
	argv, err := bootstrapCommand(b, dir, mirror)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fmt.Errorf("%s: bootstrap needs %s on the build host: %w", r.Path, argv[0], err)
	}
	tail := newTail(20)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// INITRD=No keeps Debian's kernel hooks from running dracut in every layer:
	// imgctl builds the initramfs once, when flattening.
	cmd.Env = append(os.Environ(), "INITRD=No", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	cmd.Stdout = io.MultiWriter(out, tail)
	cmd.Stderr = io.MultiWriter(out, tail)
	if err := cmd.Run(); err != nil {
		status := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ProcessState.String()
		}
		return &CommandError{Recipe: r.Path, Command: strings.Join(argv, " "), Status: status, Tail: tail.String()}
	}
	return nil
}

// bootstrapCommand is the command line that bootstraps b into dir.
func bootstrapCommand(b *recipe.Bootstrap, dir, mirror string) ([]string, error) {
	variant := b.Variant
	if variant == "" {
		variant = "minbase"
	}
	comps := b.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	tool := b.Tool
	switch b.Distro {
	case "debian", "ubuntu":
		if tool == "" {
			tool = "mmdebstrap"
			if _, err := exec.LookPath("mmdebstrap"); err != nil {
				tool = "debootstrap"
			}
		}
		if tool == "mmdebstrap" {
			argv := []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=" + variant,
				"--components=" + strings.Join(comps, ","),
				// Documentation and translations are dead weight on a diskless node.
				"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
				"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
				"--dpkgopt=path-include=/usr/share/locale/locale.alias",
				"--aptopt=APT::Install-Recommends \"false\""}
			if len(b.Include) > 0 {
				argv = append(argv, "--include="+strings.Join(b.Include, ","))
			}
			return append(argv, b.Suite, dir, mirror), nil
		}
		argv := []string{"debootstrap", "--variant=" + variant, "--components=" + strings.Join(comps, ",")}
		if len(b.Include) > 0 {
			argv = append(argv, "--include="+strings.Join(b.Include, ","))
		}
		return append(argv, b.Suite, dir, mirror), nil
	case "el":
		pkgs := append([]string{"dnf", "rootfiles", "systemd"}, b.Include...)
		argv := []string{"dnf", "--installroot=" + dir, "--releasever=" + b.Suite,
			"--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs",
			"--repofrompath=imgctl-base," + mirror, "--repo=imgctl-base", "--nogpgcheck",
			"-y", "install"}
		return append(argv, pkgs...), nil
	}
	return nil, fmt.Errorf("bootstrap: unknown distro %q", b.Distro)
}
