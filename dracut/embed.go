// Package dracut carries imgctl's dracut module, installed into bootable images
// by the build so that their initramfs can fetch, verify and mount a network root.
package dracut

import "embed"

// Modules holds the module directories (e.g. 90imgctl/), to be installed under
// /usr/lib/dracut/modules.d/ in the image.
//
//go:embed all:90imgctl
var Modules embed.FS
