package test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/vm"
)

// serveProc is the harness's `imgctl serve`, which a fault test may crash
// and start again over the same state directory.
type serveProc struct {
	ns   *netns.NS
	args []string
	log  io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	stop context.CancelFunc
	done chan error
}

func startServe(ns *netns.NS, args []string, log io.Writer) *serveProc {
	p := &serveProc{ns: ns, args: args, log: log}
	p.start()
	return p
}

func (p *serveProc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, stop := context.WithCancel(context.Background())
	cmd := p.ns.Command(context.Background(), p.args...)
	done := make(chan error, 1)
	go func() { done <- vm.RunUntil(ctx, cmd, p.log) }()
	p.cmd, p.stop, p.done = cmd, stop, done
}

// close stops serve (SIGTERM, then SIGKILL) and waits for it.
func (p *serveProc) close() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.mu.Unlock()
	stop()
	<-done
}

// crash kills serve outright (SIGKILL: no final save, sockets dropped) and
// waits until it is gone.
func (p *serveProc) crash() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	for cmd.Process == nil { // RunUntil starts it in its goroutine
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill serve: %w", err)
	}
	<-done
	return nil
}

// waitReady waits (bounded) until serve answers a range request for url
// from ns: it has verified the set and serves.
func waitReady(ctx context.Context, ns *netns.NS, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if err := ns.Command(ctx, "curl", "-sf", "-o", "/dev/null", "-r", "0-0", url).Run(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("imgctl serve not ready after %s", d)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
