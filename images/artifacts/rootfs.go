package artifacts

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// RootFSArgs is the command line that makes the root image of dir at out in
// format ("squashfs" or "erofs") with compression. mkfsTime fixes the
// filesystem's own timestamp so equal trees give equal images; file mtimes are
// kept as they are.
func RootFSArgs(format, compression, dir, out string, mkfsTime time.Time) ([]string, error) {
	switch format {
	case "", "squashfs":
		if compression == "" {
			compression = "zstd"
		}
		argv := []string{"mksquashfs", dir, out, "-noappend", "-no-progress", "-quiet",
			"-processors", strconv.Itoa(runtime.NumCPU()), "-mkfs-time", strconv.FormatInt(mkfsTime.Unix(), 10)}
		switch compression {
		case "zstd", "xz", "gzip", "lz4":
			argv = append(argv, "-comp", compression)
		case "none":
			argv = append(argv, "-noI", "-noD", "-noF", "-noX")
		default:
			return nil, fmt.Errorf("squashfs compression %q: want zstd, xz, gzip, lz4 or none", compression)
		}
		if compression == "lz4" {
			argv = append(argv, "-Xhc")
		}
		return argv, nil
	case "erofs":
		if compression == "" || compression == "zstd" {
			compression = "lz4hc" // erofs-utils 1.5 has lz4 and lz4hc only
		}
		// No -T: erofs-utils 1.5 applies it to every file, losing their mtimes.
		argv := []string{"mkfs.erofs"}
		switch compression {
		case "lz4", "lz4hc":
			argv = append(argv, "-z"+compression)
		case "none":
		default:
			return nil, fmt.Errorf("erofs compression %q: want lz4, lz4hc or none", compression)
		}
		return append(argv, out, dir), nil
	}
	return nil, fmt.Errorf("root image format %q: want squashfs or erofs", format)
}

// makeRootFS runs the root image tool, reporting its last output on failure.
func makeRootFS(ctx context.Context, argv []string, progress io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// SOURCE_DATE_EPOCH would make mksquashfs overwrite every file's mtime.
	cmd.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
	var out strings.Builder
	cmd.Stdout = io.MultiWriter(progress, &out)
	cmd.Stderr = io.MultiWriter(progress, &out)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, lastLines(out.String(), 15))
	}
	return nil
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
