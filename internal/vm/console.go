package vm

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"time"
)

// Phases a network boot passes through, in order, as seen on the console.
const (
	PhaseFirmware   = "firmware"   // iPXE banner
	PhaseDHCP       = "dhcp"       // iPXE configured its NIC
	PhaseKernel     = "kernel"     // first kernel line
	PhaseInitrd     = "initrd"     // dracut runs
	PhaseRoot       = "root"       // the new root is mounted
	PhaseSwitchRoot = "switchroot" // systemd leaves the initramfs
	PhaseMultiUser  = "multiuser"  // the real root reached multi-user
)

// phaseMarkers map a console substring to the phase it starts.
var phaseMarkers = []struct{ phase, marker string }{
	{PhaseFirmware, "iPXE"},
	{PhaseDHCP, "Configuring (net"},
	{PhaseKernel, "Linux version "},
	{PhaseInitrd, "dracut"},
	{PhaseRoot, "Initrd Root File System"},
	{PhaseSwitchRoot, "initrd-switch-root"},
	{PhaseMultiUser, "Multi-User System"},
}

// failureMarkers are console lines that mean the boot went wrong. The kernel
// command line (echoed on the console) holds rd.emergency=…, so "emergency"
// alone is not one.
var failureMarkers = []string{"[FAILED]", "soft lockup", "blocked for more than", "emergency mode",
	"Emergency Shell", "imgctl: root image rejected", "imgctl: giving up", "Kernel panic"}

// Classify returns the phase line starts ("" for none) and whether it reports
// a failure.
func Classify(line string) (phase string, failure bool) {
	for _, f := range failureMarkers {
		if strings.Contains(line, f) {
			failure = true
		}
	}
	for _, p := range phaseMarkers {
		if strings.Contains(line, p.marker) {
			if p.phase == PhaseDHCP && !strings.HasSuffix(strings.TrimSpace(line), "ok") {
				continue
			}
			return p.phase, failure
		}
	}
	return "", failure
}

// tail follows the file at path until ctx ends, calling fn for every complete
// line (carriage returns and escape sequences the firmware prints removed) and
// copying raw bytes to echo when it is not nil.
func tail(ctx context.Context, path string, echo io.Writer, fn func(string)) {
	var off int64
	var partial []byte
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if f, err := os.Open(path); err == nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				b, _ := io.ReadAll(f)
				off += int64(len(b))
				if echo != nil && len(b) > 0 {
					echo.Write(b)
				}
				partial = append(partial, b...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 {
						break
					}
					fn(cleanLine(string(partial[:i])))
					partial = partial[i+1:]
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cleanLine drops ANSI escape sequences and carriage returns.
func cleanLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == 0x1b:
			// CSI: ESC [ params final-byte
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			}
		case s[i] == '\r':
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
