// Command imgctl builds node images from layered YAML recipes, flattens them into
// boot artifacts and serves them to diskless nodes. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"go.podman.io/buildah"
	"go.podman.io/storage/pkg/reexec"
)

func main() {
	// buildah re-executes this binary for chroot isolation and storage helpers;
	// those children must branch off before anything else runs.
	if buildah.InitReexec() {
		return
	}
	reexec.Init()
	// buildah and containers/storage log through logrus at info level; only
	// their warnings are worth showing next to imgctl's own output.
	logrus.SetLevel(logrus.WarnLevel)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps an error from run to the process exit status and prints it once.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var usage *usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "imgctl: %v\n", err)
		return 2
	}
	if errors.Is(err, errSilent) {
		return 1
	}
	fmt.Fprintf(stderr, "imgctl: %v\n", err)
	return 1
}

// errSilent marks a failure that the command already reported in full (for example
// a per-node result table with failed rows): exit non-zero without repeating it.
var errSilent = errors.New("failed")

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
