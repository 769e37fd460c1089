package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// timeline is the phone-home's boot timeline (nodestate.Timeline's JSON).
type timeline struct {
	KernelS    float64    `json:"kernel_s"`
	InitrdS    float64    `json:"initrd_s"`
	UserspaceS float64    `json:"userspace_s"`
	Slowest    []unitTime `json:"slowest,omitempty"`
}

type unitTime struct {
	Unit    string  `json:"unit"`
	Seconds float64 `json:"s"`
}

// maxUnits is how many of the slowest units go home (the server takes 10).
const maxUnits = 10

// collectTimeline asks the running systemd what `systemd-analyze time` and
// `blame` would say. systemd-analyze itself refuses while the boot is still
// running ("Bootup is not yet finished"), and the unit that phones home is
// part of that boot, so the same figures are read from the manager's and the
// units' timestamps: userspace ends when multi-user.target was reached.
func collectTimeline(ctx context.Context) (*timeline, error) {
	// Generous: under emulation on a loaded host `systemctl show '*'` has
	// taken longer than 20 s; the booted report waits for it.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	mgr, err := systemctlShow(ctx, "-p", "InitRDTimestampMonotonic", "-p", "UserspaceTimestampMonotonic")
	if err != nil {
		return nil, err
	}
	target, err := systemctlShow(ctx, "-p", "ActiveEnterTimestampMonotonic", "multi-user.target")
	if err != nil {
		return nil, err
	}
	units, err := systemctlShow(ctx, "-p", "Id", "-p", "InactiveExitTimestampMonotonic",
		"-p", "ActiveEnterTimestampMonotonic", "-p", "InactiveEnterTimestampMonotonic", "*")
	if err != nil {
		return nil, err
	}
	return buildTimeline(mgr, target, units)
}

// buildTimeline computes the timeline from `systemctl show` blocks (the
// manager's, multi-user.target's, every unit's).
func buildTimeline(mgr, target, units []props) (*timeline, error) {
	if len(mgr) == 0 || len(target) == 0 {
		return nil, fmt.Errorf("systemctl show: no manager or target properties")
	}
	initrd, user := mgr[0].v["InitRDTimestampMonotonic"], mgr[0].v["UserspaceTimestampMonotonic"]
	reached := target[0].v["ActiveEnterTimestampMonotonic"]
	if user == 0 || reached < user {
		return nil, fmt.Errorf("systemd: multi-user.target not reached (userspace %dµs, target %dµs)", user, reached)
	}
	t := &timeline{UserspaceS: seconds(reached - user)}
	if initrd > 0 && initrd <= user {
		t.KernelS, t.InitrdS = seconds(initrd), seconds(user-initrd)
	} else {
		t.KernelS = seconds(user)
	}
	for _, u := range units {
		if !startsWork(u.id) {
			continue
		}
		// As systemd-analyze blame: activating until active, or until
		// inactive again (a oneshot without RemainAfterExit).
		start, up, down := u.v["InactiveExitTimestampMonotonic"], u.v["ActiveEnterTimestampMonotonic"], u.v["InactiveEnterTimestampMonotonic"]
		var d uint64
		switch {
		case start == 0:
			continue
		case up >= start:
			d = up - start
		case down >= start:
			d = down - start
		}
		if d == 0 {
			continue
		}
		t.Slowest = append(t.Slowest, unitTime{Unit: u.id, Seconds: seconds(d)})
	}
	sort.SliceStable(t.Slowest, func(i, j int) bool { return t.Slowest[i].Seconds > t.Slowest[j].Seconds })
	if len(t.Slowest) > maxUnits {
		t.Slowest = t.Slowest[:maxUnits]
	}
	return t, nil
}

// startsWork reports whether a unit's start-up time is work it does:
// services, mounts, swaps and sockets. A device unit's time is how long udev
// took to see the device (from the initramfs on), a target's is its
// dependencies', so neither says what a unit costs.
func startsWork(unit string) bool {
	for _, suffix := range []string{".service", ".mount", ".swap", ".socket"} {
		if strings.HasSuffix(unit, suffix) {
			return true
		}
	}
	return false
}

func seconds(us uint64) float64 { return float64(us/1000) / 1000 }

// systemctlShow runs `systemctl show ARGS` and parses its blocks.
func systemctlShow(ctx context.Context, args ...string) ([]props, error) {
	out, err := exec.CommandContext(ctx, "systemctl", append([]string{"show", "--no-pager"}, args...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %w", strings.Join(args, " "), err)
	}
	return parseShow(string(out)), nil
}

// props is one `systemctl show` block: the unit's Id and its numeric
// properties.
type props struct {
	id string
	v  map[string]uint64
}

// parseShow splits `systemctl show` output into blocks (blank-line
// separated); properties that are not numbers are dropped, except Id.
func parseShow(out string) []props {
	var list []props
	cur := props{v: map[string]uint64{}}
	flush := func() {
		if cur.id != "" || len(cur.v) > 0 {
			list = append(list, cur)
		}
		cur = props{v: map[string]uint64{}}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if k == "Id" {
			cur.id = v
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			cur.v[k] = n
		}
	}
	flush()
	return list
}
