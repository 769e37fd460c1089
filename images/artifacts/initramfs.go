package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// dracutModules are always added: our module, and what a live or NFS root over
// the network needs. network-legacy, because with systemd present dracut would
// otherwise pick systemd-networkd, which needs dbus in the initramfs.
var dracutModules = []string{"imgctl", "network-legacy", "network", "url-lib", "livenet", "dmsquash-live", "nfs", "overlayfs"}

// dracutDrivers are added when the kernel has them: virtual and common
// physical NICs, and what mounting the root needs.
var dracutDrivers = []string{"virtio_net", "virtio_pci", "virtio_blk", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "bnxt_en", "mlx4_en", "mlx5_core", "tg3", "r8169", "overlay", "squashfs", "loop", "nfs", "nfsv4", "erofs"}

// netbootOmit are dracut modules a network boot never uses (local disks,
// encryption, RAID, hibernation, virtiofs, terminfo); leaving them out
// shrinks the initramfs every node fetches and the kernel unpacks.
// dmsquash-live's own dependencies (dm, img-lib, rootfs-block) stay.
var netbootOmit = []string{"plymouth", "crypt", "lunmask", "nvdimm", "resume", "virtiofs", "qemu", "terminfo",
	"kernel-modules-extra", "btrfs", "mdraid", "lvm", "multipath", "iscsi", "nbd", "fcoe", "fcoe-uefi", "nvmf", "cifs", "dmraid", "biosdevname"}

// netbootOmitDrivers are kernel modules dracut's generic kernel-modules step
// would add that neither a live nor an NFS root needs in the initramfs: local
// and network filesystems other than ours, RAID, HID (the booted root loads
// what its devices need from its own module tree).
var netbootOmitDrivers = []string{"xfs", "btrfs", "cifs", "ceph", "ext4", "jbd2", "f2fs", "gfs2", "ocfs2", "nilfs2", "reiserfs", "jfs", "udf", "isofs",
	"raid456", "raid10", "raid1", "raid0", "dm-raid", "dm-crypt", "dm-integrity", "dm-cache", "dm-thin-pool", "dm-multipath", "dm-mirror", "dm-era", "dm-writecache",
	"hid-.*", "target_core_.*", "iscsi_target_mod"}

// initramfsCompression picks the compressor: zstd when the image has the tool
// (dracut otherwise logs "Cannot execute compression command 'zstd'" and
// falls back to gzip), else gzip, which every image has.
func initramfsCompression(root string) string {
	for _, p := range []string{"usr/bin/zstd", "bin/zstd"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return "--zstd"
		}
	}
	return "--gzip"
}

// imgctlModuleDir is where the builder installs our dracut module in the image.
const imgctlModuleDir = "usr/lib/dracut/modules.d/90imgctl"

// dracutPlan is one initramfs to make: the dracut command and the key of
// everything its output depends on.
type dracutPlan struct {
	argv []string
	key  string
}

// planInitramfs checks the image can make our initramfs and works out the
// dracut command and its cache key from the mounted root.
func planInitramfs(root, kver string, spec images.InitramfsSpec) (*dracutPlan, error) {
	if _, err := os.Stat(filepath.Join(root, "usr/bin/dracut")); err != nil {
		return nil, fmt.Errorf("the image has no dracut (/usr/bin/dracut): install dracut, dracut-live and dracut-network")
	}
	if _, err := os.Stat(filepath.Join(root, imgctlModuleDir, "module-setup.sh")); err != nil {
		return nil, fmt.Errorf("the image lacks imgctl's dracut module (/%s): was it built by imgctl build with a boot: section?", imgctlModuleDir)
	}
	modDir := filepath.Join(root, "usr/lib/modules", kver)
	present := map[string]bool{}
	filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			name := d.Name()
			if i := strings.Index(name, ".ko"); i > 0 {
				present[strings.ReplaceAll(name[:i], "-", "_")] = true
			}
		}
		return nil
	})
	builtin, _ := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	for _, l := range strings.Split(string(builtin), "\n") {
		if n := filepath.Base(l); strings.HasSuffix(n, ".ko") {
			present[strings.ReplaceAll(strings.TrimSuffix(n, ".ko"), "-", "_")] = true
		}
	}
	// Drivers the kernel lacks would make dracut fail; leave them out.
	var drivers []string
	for _, d := range append(append([]string{}, dracutDrivers...), spec.Drivers...) {
		if present[strings.ReplaceAll(d, "-", "_")] {
			drivers = append(drivers, d)
		}
	}
	available := map[string]bool{}
	entries, _ := os.ReadDir(filepath.Join(root, "usr/lib/dracut/modules.d"))
	for _, e := range entries {
		if n := e.Name(); len(n) > 2 {
			available[n[2:]] = true // "90livenet" → "livenet"
		}
	}
	var modules, missing []string
	for _, m := range uniq(append(append([]string{}, dracutModules...), spec.DracutModules...)) {
		switch {
		case available[m]:
			modules = append(modules, m)
		case m == "overlayfs": // only newer dracut splits it out; dmsquash-live covers it
		default:
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the image's dracut lacks module(s) %s (install dracut-live and dracut-network)", strings.Join(missing, ", "))
	}
	// What the recipe asks for wins over what we would omit.
	var omit []string
	for _, m := range uniq(append(append([]string{}, netbootOmit...), spec.Omit...)) {
		if !slices.Contains(modules, m) {
			omit = append(omit, m)
		}
	}
	var omitDrivers []string
	for _, d := range netbootOmitDrivers {
		if !slices.Contains(drivers, d) {
			omitDrivers = append(omitDrivers, d)
		}
	}
	argv := []string{"dracut", "--no-hostonly", "--force", "--kver", kver, initramfsCompression(root),
		"--add", strings.Join(modules, " "), "--omit", strings.Join(omit, " "),
		"--add-drivers", strings.Join(drivers, " "), "--omit-drivers", strings.Join(omitDrivers, " "),
		"--tmpdir", "/tmp", "/imgctl-out/initramfs.img"}
	key, err := initramfsKey(root, kver, argv)
	if err != nil {
		return nil, err
	}
	return &dracutPlan{argv: argv, key: key}, nil
}

// initramfsKey hashes what the initramfs depends on: the dracut command, the
// kernel's module tree and dracut's own files (names, sizes, mtimes: package
// files change together with those), and by content dracut's configuration
// and imgctl's module. Images sharing a kernel and dracut share the initramfs.
func initramfsKey(root, kver string, argv []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "imgctl-initramfs-v1\n%q\n", argv)
	type tree struct {
		dir     string
		content bool
	}
	for _, t := range []tree{
		{"usr/lib/modules/" + kver, false},
		{"usr/lib/dracut", false},
		{imgctlModuleDir, true},
		{"etc/dracut.conf", true},
		{"etc/dracut.conf.d", true},
		{"usr/lib/dracut/dracut.conf.d", true},
	} {
		if err := hashTree(h, root, t.dir, t.content); err != nil {
			return "", fmt.Errorf("initramfs key: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashTree(h io.Writer, root, rel string, content bool) error {
	base := filepath.Join(root, rel)
	if _, err := os.Lstat(base); os.IsNotExist(err) {
		fmt.Fprintf(h, "absent %s\n", rel)
		return nil
	}
	var paths []string
	// Our module is hashed by content on its own: every bootable layer
	// reinstalls it, so its mtimes differ between images sharing an initramfs.
	skip := filepath.Join(root, imgctlModuleDir)
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !content && p == skip {
			return filepath.SkipDir
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, p)
		if !content {
			fmt.Fprintf(h, "%s %o %d %d\n", r, st.Mode(), st.Size(), st.ModTime().UnixNano())
			continue
		}
		fmt.Fprintf(h, "%s %o %d\n", r, st.Mode(), st.Size())
		if st.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// buildInitramfs returns the cached initramfs for plan, running dracut inside
// the image (src.Run) only when no image with the same inputs made one before.
func buildInitramfs(ctx context.Context, src images.Source, plan *dracutPlan, cacheDir string, progress io.Writer) (path string, cached bool, err error) {
	path = filepath.Join(cacheDir, plan.key+".img")
	if _, err := os.Stat(path); err == nil {
		return path, true, nil
	}
	tmp, err := atomicfile.TempDir(path)
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	if err := src.Run(ctx, plan.argv, []images.Bind{{Host: tmp, Container: "/imgctl-out"}}, progress); err != nil {
		return "", false, fmt.Errorf("dracut in %s: %w", src.Ref(), err)
	}
	if err := os.Rename(filepath.Join(tmp, "initramfs.img"), path); err != nil {
		return "", false, fmt.Errorf("dracut made no initramfs: %w", err)
	}
	return path, false, nil
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
