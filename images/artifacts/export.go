package artifacts

import (
	"context"
	"io"
)

// MakeRootFS runs a RootFSArgs command line (progress nil = discard); exported
// for benchmarks and tools that make root images outside Build.
func MakeRootFS(ctx context.Context, argv []string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	return makeRootFS(ctx, argv, progress)
}
