package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/artifacts"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/vm"
)

// benchImages are the images the boot benchmark boots: the recipe of the
// squashfs set (live and NFS) and of the same image with an erofs root.
var benchImages = map[string][2]string{
	"boot-tiny":    {"test/fixtures/layers/boot-tiny.yaml", "test/fixtures/layers/boot-tiny-erofs.yaml"},
	"compute-base": {"layers/compute-base.yaml", "test/fixtures/layers/compute-base-erofs.yaml"},
}

// benchModes are the boot modes compared; nfs is the baseline.
var benchModes = []string{"live-squashfs", "live-erofs", "nfs"}

// bootSample is what one benchmark boot measured.
type bootSample struct {
	booted   float64
	phases   map[string]float64 // "source/phase" → seconds after power-on
	unpack   float64            // kernel: initramfs unpack, from its own timestamps
	timeline *nodestate.Timeline
	waits    []string // console lines of units waiting for a timeout
	root     string
}

// TestBenchBoot boots each image (IMGCTL_BENCH_BOOT_IMAGES, default
// boot-tiny,compute-base) IMGCTL_BENCH_BOOT_RUNS times (default 3) in each
// mode — live from squashfs, live from erofs, NFS — through `imgctl vm
// boot`, the modes interleaved so they share the machine's load, and writes
// bench/results/boot.json: each phase from power-on (median and max), booted,
// the ratio of every mode against the NFS boots of the same run, the
// initramfs's size and the kernel's time unpacking it, the node's own systemd
// timeline, and any unit that waited for a timeout (which fails the
// benchmark). Runs only under `make bench` (IMGCTL_BENCH=1).
func TestBenchBoot(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") == "" {
		t.Skip("benchmark: run with IMGCTL_BENCH=1 (make bench)")
	}
	requireVM(t, "ssh-keygen", "ganesha.nfsd")
	names := strings.Split(envOr("IMGCTL_BENCH_BOOT_IMAGES", "boot-tiny,compute-base"), ",")
	runs, err := strconv.Atoi(envOr("IMGCTL_BENCH_BOOT_RUNS", "3"))
	if err != nil || runs < 1 {
		t.Fatalf("IMGCTL_BENCH_BOOT_RUNS=%q: want a positive number", os.Getenv("IMGCTL_BENCH_BOOT_RUNS"))
	}
	bin := imgctl(t)
	keyDir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(keyDir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	accel := (&vm.Prober{}).Probe(context.Background())
	figures := map[string]any{"kvm": accel.Accel == vm.AccelKVM, "accel": accel.String(), "runs": runs,
		"date": time.Now().UTC().Format(time.RFC3339), "baseline": "nfs boots of the same image in the same run"}
	if accel.Accel != vm.AccelKVM {
		figures["tcg_cmdline"] = vm.TCGCmdline
	}
	var waits []string
	for i, name := range names {
		recipes, ok := benchImages[name]
		if !ok {
			t.Fatalf("IMGCTL_BENCH_BOOT_IMAGES: unknown image %q", name)
		}
		sets := map[string]*images.Entry{}
		// One subtest per build: each holds the shared build lock until it ends.
		t.Run("fixture-"+name, func(t *testing.T) { sets["squashfs"] = recipeArtifacts(t, recipes[0]) })
		t.Run("fixture-"+name+"-erofs", func(t *testing.T) { sets["erofs"] = recipeArtifacts(t, recipes[1]) })
		if sets["squashfs"] == nil || sets["erofs"] == nil {
			t.Fatalf("%s: no artifact sets", name)
		}
		samples := benchBoots(t, bin, sets, i, runs, filepath.Join(keyDir, "id.pub"))
		img, w := bootFigures(samples)
		initrd := filepath.Join(sets["squashfs"].Dir, artifacts.InitramfsFile)
		st, err := os.Stat(initrd)
		if err != nil {
			t.Fatal(err)
		}
		img["initramfs_bytes"], img["initramfs_compression"] = st.Size(), compressionOf(initrd)
		for _, f := range []string{"squashfs", "erofs"} {
			e := sets[f]
			if r, err := os.Stat(filepath.Join(e.Dir, e.Manifest.Artifacts[images.RootFS].File)); err == nil {
				img["root_image_bytes_"+f] = r.Size()
			}
		}
		figures[name] = img
		for _, l := range w {
			waits = append(waits, name+": "+l)
		}
	}
	figures["timeout_waits"] = waits
	if err := benchresult.Write("boot.json", figures); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot.json: %v", figures)
	if len(waits) > 0 {
		t.Errorf("units waited for a timeout:\n%s", strings.Join(waits, "\n"))
	}
}

// benchBoots boots every mode runs times, round by round so that the modes
// see the same load: two workers (bootSlots' two guests) take the boots in
// order.
func benchBoots(t *testing.T, bin string, sets map[string]*images.Entry, img, runs int, pubKey string) map[string][]bootSample {
	type job struct {
		mode string
		b    *bootNode
	}
	jobs := make(chan job)
	var mu sync.Mutex
	out := map[string][]bootSample{}
	var wg sync.WaitGroup
	for w := 0; w < cap(bootSlots); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				res, err := j.b.vmBoot(t, 10*time.Minute)
				if err != nil {
					t.Errorf("%s boot %s: %v\n%s", j.mode, j.b.name, err, j.b.tails(t))
					continue
				}
				s := bootSample{booted: res.Seconds, phases: map[string]float64{}, timeline: res.Timeline, root: res.RootMount}
				for _, p := range res.Phases {
					s.phases[p.Source+"/"+p.Phase] = p.At
				}
				console := j.b.console(t)
				s.unpack = unpackSeconds(console)
				s.waits = timeoutWaits(console, res.Timeline)
				mu.Lock()
				out[j.mode] = append(out[j.mode], s)
				mu.Unlock()
			}
		}()
	}
	for r := 0; r < runs; r++ {
		for m, mode := range benchModes {
			n := r*len(benchModes) + m
			set, bootMode := sets["squashfs"], "live"
			switch mode {
			case "live-erofs":
				set = sets["erofs"]
			case "nfs":
				bootMode = "nfs"
			}
			name := fmt.Sprintf("bench%d-%s-%d", img, strings.TrimPrefix(mode, "live-"), r)
			mac := fmt.Sprintf("52:54:00:5b:%02x:%02x", img, n)
			ip := fmt.Sprintf("10.%d.0.11", 100+img*20+n)
			jobs <- job{mode, newBootNode(t, bin, set, name, mac, ip, bootMode, pubKey)}
		}
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// bootFigures turns one image's samples into its figures: per mode every
// phase's median and max, booted, and both against the NFS boots.
func bootFigures(samples map[string][]bootSample) (map[string]any, []string) {
	img := map[string]any{}
	nfs := stats(pluck(samples["nfs"], func(s bootSample) float64 { return s.booted }))
	var waits []string
	for _, mode := range benchModes {
		list := samples[mode]
		if len(list) == 0 {
			continue
		}
		booted := stats(pluck(list, func(s bootSample) float64 { return s.booted }))
		// The node's own timeline figures come from the boots that sent one.
		var timed []bootSample
		for _, s := range list {
			if s.timeline != nil {
				timed = append(timed, s)
			}
		}
		phases := map[string]map[string]float64{}
		keys := map[string]bool{}
		for _, s := range list {
			for k := range s.phases {
				keys[k] = true
			}
		}
		for k := range keys {
			var v []float64
			for _, s := range list {
				if at, ok := s.phases[k]; ok {
					v = append(v, at)
				}
			}
			phases[k] = stats(v)
		}
		m := map[string]any{
			"booted_s":         booted,
			"phases_s":         phases,
			"initrd_unpack_s":  stats(pluck(list, func(s bootSample) float64 { return s.unpack })),
			"root_mount":       list[0].root,
			"vs_nfs_booted":    map[string]float64{"median": booted["median"] / nfs["median"], "max": booted["max"] / nfs["max"]},
			"booted_all_s":     pluck(list, func(s bootSample) float64 { return s.booted }),
			"userspace_s":      stats(pluck(timed, func(s bootSample) float64 { return s.timeline.UserspaceS })),
			"initrd_s":         stats(pluck(timed, func(s bootSample) float64 { return s.timeline.InitrdS })),
			"kernel_s":         stats(pluck(timed, func(s bootSample) float64 { return s.timeline.KernelS })),
			"slowest_units":    slowestUnits(list),
			"timelines_missed": count(list, func(s bootSample) bool { return s.timeline == nil }),
		}
		img[mode] = m
		for _, s := range list {
			for _, w := range s.waits {
				waits = append(waits, mode+": "+w)
			}
		}
	}
	return img, waits
}

func tl(s bootSample) *nodestate.Timeline {
	if s.timeline == nil {
		return &nodestate.Timeline{}
	}
	return s.timeline
}

// slowestUnits is each unit's worst start-up time over the boots, slowest
// first, at most ten.
func slowestUnits(list []bootSample) map[string]float64 {
	worst := map[string]float64{}
	for _, s := range list {
		for _, u := range tl(s).Slowest {
			worst[u.Unit] = max(worst[u.Unit], u.Seconds)
		}
	}
	names := make([]string, 0, len(worst))
	for n := range worst {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return worst[names[i]] > worst[names[j]] })
	out := map[string]float64{}
	for i, n := range names {
		if i == nodestate.MaxUnits {
			break
		}
		out[n] = worst[n]
	}
	return out
}

func pluck(list []bootSample, f func(bootSample) float64) []float64 {
	v := make([]float64, 0, len(list))
	for _, s := range list {
		v = append(v, f(s))
	}
	return v
}

func count(list []bootSample, f func(bootSample) bool) int {
	n := 0
	for _, s := range list {
		if f(s) {
			n++
		}
	}
	return n
}

// stats is the median and max of v (the median of an even count is the
// mean of the middle two).
func stats(v []float64) map[string]float64 {
	if len(v) == 0 {
		return map[string]float64{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return map[string]float64{"median": med, "max": s[len(s)-1]}
}

var kernelStamp = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\]`)

// unpackSeconds is the kernel's own time from "Trying to unpack rootfs image
// as initramfs" to "Freeing initrd memory" (decompressing and unpacking the
// initramfs), 0 when the console lacks either line.
func unpackSeconds(console string) float64 {
	var start, end float64
	for _, l := range strings.Split(console, "\n") {
		m := kernelStamp.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[1], 64)
		switch {
		case strings.Contains(l, "Trying to unpack rootfs image as initramfs"):
			start = at
		case strings.Contains(l, "Freeing initrd memory") && start > 0 && end == 0:
			end = at
		}
	}
	if start == 0 || end < start {
		return 0
	}
	return end - start
}

// timeoutWaits are the signs of a unit waiting for a timeout: systemd's
// console lines for a job that timed out, and a unit the node's own timeline
// puts at 90 s or more (systemd's default start timeout).
func timeoutWaits(console string, t *nodestate.Timeline) []string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "timed out") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	if t != nil {
		for _, u := range t.Slowest {
			if u.Seconds >= 90 {
				out = append(out, fmt.Sprintf("%s took %.1fs", u.Unit, u.Seconds))
			}
		}
	}
	return out
}

// compressionOf names an initramfs's compression from its first bytes.
func compressionOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	b := make([]byte, 6)
	n, _ := f.Read(b)
	b = b[:n]
	switch {
	case len(b) >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd:
		return "zstd"
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return "gzip"
	case len(b) >= 4 && b[0] == 0x02 && b[1] == 0x21 && b[2] == 0x4c && b[3] == 0x18:
		return "lz4"
	case len(b) >= 6 && string(b) == "070701":
		return "cpio (early cpio first)"
	}
	return "unknown"
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
