package nodestate

import (
	"fmt"
	"math"
	"strings"
)

// MaxUnits bounds the slowest units a node may report: a boot timeline is a
// summary, not the journal.
const MaxUnits = 10

// Timeline is the booted node's own account of its boot, from systemd
// (`systemd-analyze time` and `blame`): where the seconds went once the
// kernel ran, so a user sees which unit costs time on their image.
type Timeline struct {
	KernelS    float64 `json:"kernel_s"`    // kernel start to initramfs start
	InitrdS    float64 `json:"initrd_s"`    // initramfs start to switch-root (0 without one)
	UserspaceS float64 `json:"userspace_s"` // switch-root to multi-user.target reached
	// Slowest are the units that took longest to start, slowest first.
	Slowest []UnitTime `json:"slowest,omitempty"`
}

// UnitTime is one unit's start-up time.
type UnitTime struct {
	Unit    string  `json:"unit"`
	Seconds float64 `json:"s"`
}

// Validate refuses a timeline no node could have measured.
func (t *Timeline) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"kernel_s", t.KernelS}, {"initrd_s", t.InitrdS}, {"userspace_s", t.UserspaceS}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("timeline %s: %v is not a duration", f.name, f.v)
		}
	}
	if len(t.Slowest) > MaxUnits {
		return fmt.Errorf("timeline: %d slowest units, at most %d", len(t.Slowest), MaxUnits)
	}
	for i, u := range t.Slowest {
		if u.Unit == "" || len(u.Unit) > 256 || strings.ContainsAny(u.Unit, " \t\n") {
			return fmt.Errorf("timeline slowest[%d]: unit name %q", i, u.Unit)
		}
		if u.Seconds < 0 || math.IsNaN(u.Seconds) || math.IsInf(u.Seconds, 0) {
			return fmt.Errorf("timeline slowest[%d] %s: %v is not a duration", i, u.Unit, u.Seconds)
		}
	}
	return nil
}

// SlowestString is the first n slowest units, "a.service 9.0s, b.service 2.1s".
func (t *Timeline) SlowestString(n int) string {
	var parts []string
	for i, u := range t.Slowest {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1fs", u.Unit, u.Seconds))
	}
	return strings.Join(parts, ", ")
}

// String is the timeline in one line: "kernel 5.1s, initrd 12.0s, userspace
// 30.2s; slowest: a.service 9.0s, …".
func (t *Timeline) String() string {
	s := fmt.Sprintf("kernel %.1fs, initrd %.1fs, userspace %.1fs", t.KernelS, t.InitrdS, t.UserspaceS)
	if len(t.Slowest) > 0 {
		s += "; slowest: " + t.SlowestString(3)
	}
	return s
}

func (t *Timeline) clone() *Timeline {
	if t == nil {
		return nil
	}
	c := *t
	c.Slowest = append([]UnitTime(nil), t.Slowest...)
	return &c
}
