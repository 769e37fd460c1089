package benchresult

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Host describes how loaded the machine was when a benchmark ended, so a
// reader can tell figures from a quiet host from ones taken while other work
// ran beside it: the CPU count, the 1-minute load average (Linux), and busy
// when the load exceeded the CPUs. Merge it into a result's figures.
func Host() map[string]any {
	cpus := runtime.NumCPU()
	out := map[string]any{"host_cpus": cpus}
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return out
	}
	if load, err := strconv.ParseFloat(f[0], 64); err == nil {
		out["host_load_1m"] = load
		out["host_busy"] = load > float64(cpus)
	}
	return out
}
