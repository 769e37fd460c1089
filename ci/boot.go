package ci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
)

// sshWait bounds the wait for a booted node's sshd before its tests.
const sshWait = 2 * time.Minute

// tailLines is how many last output lines a report keeps of a command.
const tailLines = 30

// nodeTable is the run's inventory: one machine per bootable target, never
// written to the state directory's nodes.yaml (vmboot hands each private
// boot service a one-node inventory of its own).
type nodeTable struct {
	mu sync.Mutex
	m  map[string]inventory.Node
}

// Node implements vmboot.Nodes.
func (t *nodeTable) Node(ctx context.Context, name string) (inventory.Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.m[name]
	if !ok {
		return inventory.Node{}, fmt.Errorf("ci node %s: %w", name, store.ErrNotFound)
	}
	return n, nil
}

// addNode registers the machine that boots res: "ci-<recipe>", a MAC and
// an address of its own (each boot has its own namespace and bridge, so
// they only need to be valid).
func (e *executor) addNode(res *Recipe, index int) string {
	name := "ci-" + strings.NewReplacer(".", "-", "_", "-").Replace(res.Name)
	e.nodes.mu.Lock()
	defer e.nodes.mu.Unlock()
	e.nodes.m[name] = inventory.Node{
		Name: name,
		MACs: []string{fmt.Sprintf("52:54:00:c1:%02x:%02x", index>>8&0xff, index&0xff)},
		IP:   fmt.Sprintf("10.77.%d.11", index%250+1),
		Settings: inventory.Settings{
			Image: res.Name,
			Mode:  e.opts.Mode,
		},
	}
	return name
}

// bootAndTest boots a flattened target and runs its test commands on it.
func (e *executor) bootAndTest(ctx context.Context, j bootJob) {
	res := j.res
	tests := j.n.r.Test
	if ctx.Err() != nil {
		res.Status, res.Reason = Skipped, "run interrupted before its boot"
		return
	}
	res.Boot = &Boot{Node: j.node}
	var ran []Test
	opts := vmboot.Options{
		StateDir:  e.opts.StateDir,
		Nodes:     e.nodes,
		States:    e.opts.States,
		HostKeys:  e.opts.HostKeys,
		Mode:      e.opts.Mode,
		MemoryMiB: e.opts.MemoryMiB,
		Timeout:   e.opts.BootTimeout,
		Exe:       e.opts.Exe,
		QEMU:      e.opts.QEMU,
		Accel:     e.opts.Accel,
		Progress:  e.progress,
		Log:       e.opts.Log,
	}
	if len(tests) > 0 {
		opts.OnBooted = func(ctx context.Context, bn vmboot.BootedNode) error {
			ran = e.runTests(ctx, res.Name, bn, tests)
			return nil // a failed test fails the recipe, not the boot
		}
	}
	if opts.States == nil || (len(tests) > 0 && opts.HostKeys == nil) {
		res.Boot.Status, res.Boot.Error = Failed, "ci: booting needs Options.States (and HostKeys for tests)"
		e.fail(res, "%s", res.Boot.Error)
		return
	}
	e.stepf(res.Name, "boot as %s (%s)", j.node, e.opts.Mode)
	br, err := vmboot.Boot(ctx, opts, j.node)
	res.Boot.Seconds, res.Boot.Phases, res.Boot.RootMount, res.Boot.Accel = br.Seconds, br.Phases, br.RootMount, string(br.Accel)
	res.Boot.ConsoleLog = e.keepLog(res.Name, br.ConsoleLog)
	res.Boot.ServeLog = e.keepLog(res.Name, br.ServeLog)
	res.Boot.QEMULog = e.keepLog(res.Name, br.QEMULog)
	if err != nil || !br.Booted {
		if err == nil {
			err = errors.New("did not report booted")
		}
		res.Boot.Status, res.Boot.Error = Failed, err.Error()
		for _, c := range tests {
			res.Tests = append(res.Tests, Test{Command: c, Status: Skipped, ExitCode: -1, Error: "the node did not boot"})
		}
		if ctx.Err() != nil {
			res.Status, res.Reason = Skipped, "run interrupted during its boot"
			return
		}
		e.fail(res, "boot failed: %v", err)
		return
	}
	res.Boot.Status = Passed
	e.stepf(res.Name, "booted in %.1fs", br.Seconds)
	res.Tests = ran
	for _, t := range ran {
		if t.Status != Passed {
			e.fail(res, "test failed: %s (exit %d)", t.Command, t.ExitCode)
			return
		}
	}
}

// runTests runs cmds on the booted node one after another, after waiting
// for its sshd. Each command's full output goes to test-N.log.
func (e *executor) runTests(ctx context.Context, name string, bn vmboot.BootedNode, cmds []string) []Test {
	out := make([]Test, len(cmds))
	wctx, cancel := context.WithTimeout(ctx, sshWait)
	_, err := bn.Output(wctx, "true")
	cancel()
	if err != nil {
		for i, c := range cmds {
			out[i] = Test{Command: c, Status: Failed, ExitCode: -1, Error: "node not reachable over SSH: " + err.Error()}
		}
		return out
	}
	for i, c := range cmds {
		out[i] = e.runTest(ctx, bn, c, filepath.Join(e.opts.LogDir, name, fmt.Sprintf("test-%d.log", i+1)))
		e.stepf(name, "test %q: %s (exit %d, %.1fs)", c, out[i].Status, out[i].ExitCode, out[i].Seconds)
	}
	return out
}

// runTest runs one command over SSH and keeps its exit code, time and output.
func (e *executor) runTest(ctx context.Context, bn vmboot.BootedNode, command, logPath string) Test {
	tctx, cancel := context.WithTimeout(ctx, e.opts.TestTimeout)
	defer cancel()
	var buf bytes.Buffer
	cmd := bn.Command(tctx, command)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	t := Test{Command: command, Seconds: time.Since(start).Seconds(), ExitCode: -1, Output: lastLines(buf.String(), tailLines)}
	if cmd.ProcessState != nil {
		t.ExitCode = cmd.ProcessState.ExitCode()
	}
	os.WriteFile(logPath, buf.Bytes(), 0o644)
	switch {
	case err == nil:
		t.Status = Passed
	case tctx.Err() == context.DeadlineExceeded:
		t.Status, t.Error = Failed, fmt.Sprintf("timed out after %s", e.opts.TestTimeout)
	case t.ExitCode == 255:
		t.Status, t.Error = Failed, "ssh failed (exit 255): the command may not have run"
	default:
		t.Status = Failed
		if t.ExitCode < 0 {
			t.Error = err.Error()
		}
	}
	return t
}

// keepLog copies a boot log into the recipe's log directory (the VM's own
// directory is reused by the next boot of the node) and returns its path
// relative to LogDir; "" when there is none.
func (e *executor) keepLog(name, src string) string {
	if src == "" {
		return ""
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return ""
	}
	rel := filepath.Join(name, filepath.Base(src))
	if err := os.WriteFile(filepath.Join(e.opts.LogDir, rel), data, 0o644); err != nil {
		return ""
	}
	return rel
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
