package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/logging"
	"github.com/imgctl/imgctl/internal/netns"
)

// Config is one network boot of one node.
type Config struct {
	Machine Machine // Tap is filled in by Boot
	// BridgeAddr is the boot service's address on the node's bridge, in
	// CIDR form (e.g. 10.50.0.1/24).
	BridgeAddr string
	// Serve runs the boot service inside ns until ctx ends; nil = none (a
	// boot service already listening in the namespace, or a firmware test).
	Serve func(ctx context.Context, ns *netns.NS) error
	// Booted is polled once a second; true (or an error) ends the boot and
	// stops the machine. nil = wait for the multi-user console line.
	Booted func(ctx context.Context) (bool, error)
	// OnBooted runs once the node booted, before the machine is stopped, in
	// the boot's context (bounded by Timeout); ns is where the node is
	// reachable (run clients through ns.Command). Its error is Boot's error,
	// with Result.Booted still true. nil = stop at once.
	OnBooted func(ctx context.Context, ns *netns.NS) error
	// QEMU is the emulator to run; "" = qemu-system-x86_64.
	QEMU string
	// QEMULog receives QEMU's own stdout and stderr (truncated at start);
	// "" = qemu.log beside Machine.SerialLog. Its last lines are quoted when
	// QEMU exits before the node booted.
	QEMULog string
	Console io.Writer       // echo of the serial console; nil = none
	OnPhase func(PhaseTime) // called as each console phase is first seen; nil = none
	Timeout time.Duration   // 0 = 240 s
	Log     *slog.Logger
}

// PhaseTime is when a phase started, counted from QEMU's start.
type PhaseTime struct {
	Phase string        `json:"phase"`
	At    time.Duration `json:"at_ns"`
}

// Result is what a boot showed.
type Result struct {
	Namespace string        `json:"namespace"`
	QEMULog   string        `json:"qemu_log,omitempty"` // QEMU's own output
	Phases    []PhaseTime   `json:"phases"`
	Booted    bool          `json:"booted"`
	BootedAt  time.Duration `json:"booted_at_ns"`
	Failures  []string      `json:"failures,omitempty"` // console lines matching failure markers
}

// Boot creates a namespace with a bridge and a tap, runs cfg.Serve in it,
// starts QEMU on the tap and waits until the node booted, QEMU exits, the
// timeout passes or ctx ends. The machine and the namespace are always
// removed before Boot returns. The result is returned also with an error.
func Boot(ctx context.Context, cfg Config) (*Result, error) {
	log := logging.OrDiscard(cfg.Log)
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 240 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ns, err := netns.New(ctx, netns.UniqueName("imgvm"))
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	res := &Result{Namespace: ns.Name}
	defer func() {
		if err := ns.Close(); err != nil {
			log.Warn("remove namespace", "netns", ns.Name, "err", err)
		}
	}()
	if err := ns.Bridge(ctx, "br0", cfg.BridgeAddr); err != nil {
		return res, fmt.Errorf("vm: %w", err)
	}
	if err := ns.Tap(ctx, "tap0", "br0"); err != nil {
		return res, fmt.Errorf("vm: %w", err)
	}
	m := cfg.Machine
	m.Tap = "tap0"
	args, err := m.Args()
	if err != nil {
		return res, fmt.Errorf("vm: %w", err)
	}

	var wg sync.WaitGroup
	defer wg.Wait() // the boot service has stopped before the namespace goes
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	srvErr := make(chan error, 1)
	if cfg.Serve != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srvErr <- cfg.Serve(srvCtx, ns)
		}()
	}

	qemu := cfg.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	qlogPath := cfg.QEMULog
	if qlogPath == "" {
		qlogPath = filepath.Join(filepath.Dir(m.SerialLog), "qemu.log")
	}
	qlog, err := os.Create(qlogPath)
	if err != nil {
		return res, fmt.Errorf("vm: qemu log: %w", err)
	}
	defer qlog.Close()
	res.QEMULog = qlogPath
	cmd := ns.Command(context.Background(), append([]string{qemu}, args...)...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("vm: start qemu: %w", err)
	}
	log.Info("qemu started", "pid", cmd.Process.Pid, "netns", ns.Name, "mac", m.MAC, "accel", m.Accel)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			// `ip netns exec` execs QEMU, so this PID is QEMU's.
			cmd.Process.Kill()
			<-exited
		}
	}()

	var mu sync.Mutex
	seen := map[string]bool{}
	tailCtx, stopTail := context.WithCancel(context.Background())
	tailDone := make(chan struct{})
	go func() {
		defer close(tailDone)
		tail(tailCtx, m.SerialLog, cfg.Console, func(line string) {
			phase, failed := Classify(line)
			mu.Lock()
			defer mu.Unlock()
			if phase != "" && !seen[phase] {
				seen[phase] = true
				res.Phases = append(res.Phases, PhaseTime{Phase: phase, At: time.Since(start)})
				log.Info("boot phase", "phase", phase, "at", time.Since(start).Round(100*time.Millisecond))
				if cfg.OnPhase != nil {
					cfg.OnPhase(res.Phases[len(res.Phases)-1])
				}
			}
			if failed {
				res.Failures = append(res.Failures, line)
			}
		})
	}()
	finish := func() {
		stopTail()
		<-tailDone
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			finish()
			return res, fmt.Errorf("vm: node %s did not boot within %s: %w", m.MAC, timeout, ctx.Err())
		case err := <-exited:
			stopped = true
			finish()
			return res, earlyExit(qemu, err, qlogPath, time.Since(start))
		case err := <-srvErr:
			finish()
			if err == nil {
				err = errors.New("stopped")
			}
			return res, fmt.Errorf("vm: boot service: %w", err)
		case <-tick.C:
		}
		booted := false
		if cfg.Booted != nil {
			ok, err := cfg.Booted(ctx)
			if err != nil {
				finish()
				return res, fmt.Errorf("vm: node %s: %w", m.MAC, err)
			}
			booted = ok
		} else {
			mu.Lock()
			booted = seen[PhaseMultiUser]
			mu.Unlock()
		}
		if booted {
			res.Booted, res.BootedAt = true, time.Since(start)
			var hookErr error
			if cfg.OnBooted != nil {
				if hookErr = cfg.OnBooted(ctx, ns); hookErr != nil {
					hookErr = fmt.Errorf("vm: node %s booted, then: %w", m.MAC, hookErr)
				}
			}
			cmd.Process.Kill() // no need to wait for the guest to power off
			<-exited
			stopped = true
			finish()
			return res, hookErr
		}
	}
}

// tailLines is how many of QEMU's last output lines an early exit quotes.
const tailLines = 8

// earlyExit describes QEMU stopping before the node booted: its exit status
// and the last lines it wrote to logPath.
func earlyExit(qemu string, waitErr error, logPath string, after time.Duration) error {
	status := "exit status 0: the guest powered off" // -no-reboot turns a reboot into this too
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee):
		status = ee.ProcessState.String() // "exit status 1", "signal: aborted"
	case waitErr != nil:
		status = waitErr.Error()
	}
	data, _ := os.ReadFile(logPath)
	tail := lastLines(string(data), tailLines, "\n    ")
	if tail == "" {
		tail = "(nothing)"
	}
	return fmt.Errorf("vm: %s exited before the node booted (%s after %.1fs); last output in %s:\n    %s",
		qemu, status, after.Seconds(), logPath, tail)
}
