// Package artifacts flattens an image into what a diskless node boots: the
// kernel, a dracut initramfs with imgctl's module, a squashfs (or erofs) root
// image, the image's overlay templates and a manifest with sha256 of
// everything, installed atomically into the artifact store.
package artifacts

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// findKernel picks the kernel in root/boot: the one named by want
// ("vmlinuz-<ver>" or "<ver>"), or the only one. It returns the path and the
// kernel version.
func findKernel(root, want string) (path, version string, err error) {
	matches, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil {
		return "", "", err
	}
	sort.Strings(matches)
	var found []string
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
			found = append(found, filepath.Base(m))
		}
	}
	if want != "" {
		want = "vmlinuz-" + strings.TrimPrefix(want, "vmlinuz-")
		for _, f := range found {
			if f == want {
				return filepath.Join(root, "boot", f), strings.TrimPrefix(f, "vmlinuz-"), nil
			}
		}
		return "", "", fmt.Errorf("boot.kernel %s is not in the image's /boot (found: %s)", want, list(found))
	}
	switch len(found) {
	case 0:
		return "", "", fmt.Errorf("the image has no kernel: no /boot/vmlinuz-* (install a kernel package, e.g. linux-image-amd64)")
	case 1:
		return filepath.Join(root, "boot", found[0]), strings.TrimPrefix(found[0], "vmlinuz-"), nil
	}
	return "", "", fmt.Errorf("the image has %d kernels (%s): name one with boot.kernel", len(found), list(found))
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
