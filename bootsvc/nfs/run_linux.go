package nfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// Run mounts the wanted roots, starts ganesha and keeps it running until ctx
// ends; then it stops ganesha (by PID) and unmounts what it mounted.
func (s *Server) Run(ctx context.Context) error {
	if !s.cfg.Enabled {
		close(s.ready)
		<-ctx.Done()
		return nil
	}
	defer s.unmountAll()
	entries, err := s.wanted(ctx)
	if err != nil {
		// A node that cannot boot must not keep the others from booting.
		s.log.Warn("nfs: some nodes cannot be resolved; their roots are not exported", "err", err)
	}
	var exports []export
	for i, e := range entries {
		mp, err := s.mount(ctx, e)
		if err != nil {
			s.log.Error("nfs: cannot mount root", "image", e.Manifest.Name, "err", err)
			continue
		}
		exports = append(exports, export{ID: i + 1, Path: mp, Pseudo: s.pseudo(e.Manifest.Name, e.Manifest.ImageDigest)})
	}
	s.mu.Lock()
	s.exports = exports
	s.mu.Unlock()
	if len(exports) == 0 {
		s.log.Info("nfs: no node boots an NFS root; ganesha not started")
		close(s.ready)
		<-ctx.Done()
		return nil
	}
	return s.runGanesha(ctx, exports)
}

// mount loop-mounts a set's root image read-only; an existing mount of ours
// from an earlier run is reused.
func (s *Server) mount(ctx context.Context, e *images.Entry) (string, error) {
	a, ok := e.Manifest.Artifacts[images.RootFS]
	if !ok {
		return "", fmt.Errorf("%s has no root image", e.Manifest.Name)
	}
	mp := s.mountPoint(e.Manifest.Name, e.Manifest.ImageDigest)
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return "", err
	}
	if mounted(mp) {
		s.log.Info("nfs: root already mounted", "dir", mp)
		return mp, nil
	}
	fstype := e.Manifest.Root.Format
	if fstype == "" {
		fstype = "squashfs"
	}
	// mount(8) -o loop attaches the loop device with autoclear, so unmounting
	// detaches it: we never touch loop devices we didn't attach.
	out, err := exec.CommandContext(ctx, "mount", "-t", fstype, "-o", "ro,loop,nodev", filepath.Join(e.Dir, a.File), mp).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mount %s: %w: %s", a.File, err, out)
	}
	s.mu.Lock()
	s.mounts[mp] = e.Manifest.Name + "@" + e.Manifest.ImageDigest
	s.mu.Unlock()
	s.log.Info("nfs: root mounted", "image", e.Manifest.Name, "dir", mp)
	return mp, nil
}

// mounted reports whether dir is a mount point (its device differs from its parent's).
func mounted(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func (s *Server) unmountAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for mp := range s.mounts {
		if err := syscall.Unmount(mp, 0); err != nil {
			// Busy (a lingering reader): detach lazily rather than leak.
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
				s.log.Error("nfs: unmount", "dir", mp, "err", err)
				continue
			}
		}
		delete(s.mounts, mp)
		s.log.Info("nfs: root unmounted", "dir", mp)
	}
}

// runGanesha writes the config, starts ganesha in the foreground as our
// child and stops it by PID when ctx ends.
func (s *Server) runGanesha(ctx context.Context, exports []export) error {
	dir := filepath.Join(s.deps.StateDir, "nfs")
	if err := os.MkdirAll(filepath.Join(dir, "recovery"), 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "ganesha.conf")
	if err := atomicfile.WriteFile(conf, []byte(ganeshaConfig(s.cfg, s.deps.StateDir, exports)), 0o644); err != nil {
		return fmt.Errorf("nfs: %w", err)
	}
	// Pdeathsig fires when the starting *thread* exits; keep this goroutine on
	// one thread for ganesha's whole life so the signal means "we are gone".
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	logFile := filepath.Join(dir, "ganesha.log")
	cmd := exec.Command(s.cfg.Ganesha, "-F", "-f", conf, "-L", logFile, "-p", filepath.Join(dir, "ganesha.pid"), "-N", s.cfg.LogLevel)
	if s.deps.Wrap != nil {
		cmd = s.deps.Wrap(cmd)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive us
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("nfs: start ganesha: %w", err)
	}
	s.log.Info("nfs: ganesha started", "pid", cmd.Process.Pid, "config", conf, "exports", len(exports))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := s.waitListening(ctx, exited); err != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		return err
	}
	close(s.ready)
	select {
	case err := <-exited:
		return fmt.Errorf("nfs: ganesha exited: %v (log %s)", err, logFile)
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	s.log.Info("nfs: ganesha stopped", "pid", cmd.Process.Pid)
	return nil
}

// waitListening polls ganesha's port until it accepts or ganesha dies.
func (s *Server) waitListening(ctx context.Context, exited chan error) error {
	addr := net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))
	deadline := time.After(30 * time.Second)
	dial := s.deps.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: time.Second}).DialContext
	}
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("nfs: ganesha exited while starting: %v", err)
		case <-deadline:
			return errors.New("nfs: ganesha not listening after 30s on " + addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
