package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/imgctl/imgctl/internal/netns"
)

// stopGrace is how long a stopped boot service gets to shut its own children
// (nfs-ganesha, loop mounts) down before it is killed.
const stopGrace = 20 * time.Second

// ServeProcess returns a Config.Serve that runs argv (typically `imgctl serve
// ...`) inside the namespace with its output to out, and stops it with
// SIGTERM when ctx ends: a SIGKILL would strand the children it supervises.
// A process that exits on its own is an error, since the node still needs it.
func ServeProcess(argv []string, out io.Writer) func(ctx context.Context, ns *netns.NS) error {
	return func(ctx context.Context, ns *netns.NS) error {
		return RunUntil(ctx, ns.Command(context.Background(), argv...), out)
	}
}

// RunUntil starts cmd and waits for it; when ctx ends first, it sends SIGTERM,
// waits up to stopGrace and then kills. It returns nil only when ctx ended
// and the process stopped cleanly on the signal.
func RunUntil(ctx context.Context, cmd *exec.Cmd, out io.Writer) error {
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			err = errors.New("exited")
		}
		return fmt.Errorf("pid %d stopped on its own: %w", cmd.Process.Pid, err)
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(stopGrace):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("pid %d ignored SIGTERM for %s; killed", cmd.Process.Pid, stopGrace)
	}
}
