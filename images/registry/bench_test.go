package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/images/registry"
	"github.com/imgctl/imgctl/internal/benchresult"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestBenchRegistry measures publish and pull of a set with a 256 MiB root
// image against the baseline of the same bytes sent and fetched as one plain
// HTTP blob upload/download to the same registry. Run with IMGCTL_BENCH=1.
func TestBenchRegistry(t *testing.T) {
	if os.Getenv("IMGCTL_BENCH") != "1" {
		t.Skip("benchmark: set IMGCTL_BENCH=1")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "docker-registry")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const rootSize = 256 << 20
	reg := startRegistry(t)
	src, _ := newSite(t, ctx)
	img := buildImage(t, ctx, src.store, "bench", map[string]string{images.LabelRecipe: "bench"})
	set := writeSetSized(t, ctx, src.state, "bench", imageDigest(img), rootSize)

	// Baseline: one monolithic blob upload and one download of the root image.
	root, err := os.ReadFile(filepath.Join(set.Dir, "rootfs.squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	root[0] ^= 1 // a different blob, so the publish below still uploads its own
	d := digest.FromBytes(root)
	start := time.Now()
	rawPut(t, ctx, reg.addr, "baseline/raw", d, root)
	putBase := time.Since(start)

	start = time.Now()
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "bench", Registry: reg.Host + "/bench"}); err != nil {
		t.Fatal(err)
	}
	publish := time.Since(start)
	start = time.Now()
	if _, err := src.client.Publish(ctx, registry.PublishRequest{Image: "bench", Registry: reg.Host + "/bench"}); err != nil {
		t.Fatal(err)
	}
	republish := time.Since(start)
	// Three rounds of a raw GET and a pull (each into a new site), one after
	// the other, so a busy moment on the host does not land on one side
	// only; medians are reported.
	const rounds = 3
	var gets, getCPUs, pulls, pullCPUs []float64
	for round := 0; round < rounds; round++ {
		start = time.Now()
		cpu0 := cpuSeconds()
		rawGet(t, ctx, reg.addr, "baseline/raw", d)
		gets, getCPUs = append(gets, time.Since(start).Seconds()), append(getCPUs, cpuSeconds()-cpu0)
		dst, _ := newSite(t, ctx)
		start = time.Now()
		cpu0 = cpuSeconds()
		if _, err := dst.client.Pull(ctx, registry.PullRequest{Ref: reg.Host + "/bench/bench"}); err != nil {
			t.Fatal(err)
		}
		pulls, pullCPUs = append(pulls, time.Since(start).Seconds()), append(pullCPUs, cpuSeconds()-cpu0)
		t.Logf("round %d: raw GET %.2f s, pull %.2f s", round, gets[round], pulls[round])
	}
	getBase, getCPU, pull, pullCPU := median(gets), median(getCPUs), median(pulls), median(pullCPUs)

	figures := map[string]any{
		"root_image_bytes":        rootSize,
		"baseline_put_seconds":    putBase.Seconds(),
		"baseline_get_seconds":    getBase,
		"publish_vs_raw_put":      publish.Seconds() / putBase.Seconds(),
		"republish_vs_raw_put":    republish.Seconds() / putBase.Seconds(),
		"pull_verify_vs_raw_get":  pull / getBase,
		"rounds":                  rounds,
		// CPU of this process (client side) alone: steadier on a busy host.
		"pull_cpu_vs_raw_get_cpu": pullCPU / getCPU,
		"raw_get_cpu_seconds":     getCPU,
		"pull_cpu_seconds":        pullCPU,
		"publish_seconds":         publish.Seconds(),
		"republish_seconds":       republish.Seconds(),
		"pull_and_verify_seconds": pull,
	}
	for k, v := range benchresult.Host() {
		figures[k] = v
	}
	t.Logf("figures: %v", figures)
	if err := benchresult.Write("registry.json", figures); err != nil {
		t.Fatal(err)
	}
}

// rawPut uploads body as one blob with the monolithic POST+PUT of the
// distribution API.
func rawPut(t *testing.T, ctx context.Context, addr, repo string, d digest.Digest, body []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", addr, repo), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %v %s", err, resp.Status)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s", resp.Status)
	}
}

func rawGet(t *testing.T, ctx context.Context, addr, repo string, d digest.Digest) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, repo, d), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, resp.Body); err != nil || !v.Verified() {
		t.Fatalf("download: %v", err)
	}
}

// cpuSeconds is the user+system CPU this process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
