package nodestate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordPhasesAndPersist(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, st := range []State{DHCP, IPXE, Kernel} {
		if err := s.Record(ctx, "nid001", st, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Report(ctx, "nid001", Report{State: Booted, ImageDigest: "sha256:aa", RootMount: "overlay /", Hostname: "nid001"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "nid001", "bogus", ""); err == nil {
		t.Error("unknown state accepted")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := s2.Get("nid001")
	if !ok {
		t.Fatal("nid001 not persisted")
	}
	var phases []State
	for _, st := range States {
		if _, ok := n.Phases[st]; ok {
			phases = append(phases, st)
		}
	}
	if diff := cmp.Diff([]State{DHCP, IPXE, Kernel, Booted}, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if n.State != Booted || n.ImageDigest != "sha256:aa" || n.RootMount != "overlay /" {
		t.Errorf("reloaded node = %+v", n)
	}
	if !Stale(n, "sha256:bb") || Stale(n, "sha256:aa") {
		t.Error("Stale wrong")
	}
	// A new DHCP starts a new boot: old phases are dropped.
	s2.Record(ctx, "nid001", DHCP, "")
	n, _ = s2.Get("nid001")
	if len(n.Phases) != 1 {
		t.Errorf("phases after new boot = %v", n.Phases)
	}
	// The initramfs's own lease, right after the kernel, is the same boot.
	s2.Record(ctx, "nid001", IPXE, "")
	s2.Record(ctx, "nid001", Kernel, "")
	s2.Record(ctx, "nid001", InitrdDHCP, "initrd")
	n, _ = s2.Get("nid001")
	if n.State != Kernel || len(n.Phases) != 4 || n.Phases[InitrdDHCP].IsZero() {
		t.Errorf("after the initrd lease: state %s phases %v", n.State, n.Phases)
	}
	if sum := Summarize(n, "", time.Now()).Phases; !strings.Contains(sum, "kernel 0s, initrd-dhcp 0s") {
		t.Errorf("summary phases %q", sum)
	}
	// A lease renewal of a running node changes nothing; a firmware lease
	// after a power cycle mid-boot starts a new boot.
	s2.Record(ctx, "nid001", Booted, "")
	before, _ := s2.Get("nid001")
	s2.Record(ctx, "nid001", InitrdDHCP, "renewal")
	if after, _ := s2.Get("nid001"); after.State != Booted || !after.Updated.Equal(before.Updated) {
		t.Errorf("a renewal changed a booted node: %+v", after)
	}
	s2.Record(ctx, "nid001", Kernel, "")
	s2.Record(ctx, "nid001", DHCP, "firmware again")
	if n, _ := s2.Get("nid001"); n.State != DHCP || len(n.Phases) != 1 {
		t.Errorf("firmware lease after a cycle: state %s phases %v", n.State, n.Phases)
	}
}

func TestConcurrentRecordsBatch(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := s.Record(ctx, fmt.Sprintf("n%04d", i), Booted, ""); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Counts()[Booted]; got != 1000 {
		t.Errorf("persisted booted = %d, want 1000", got)
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := Node{Name: "nid001", State: Booted, Updated: t0.Add(48 * time.Second), ImageDigest: "sha256:aa",
		Phases: map[State]time.Time{DHCP: t0, IPXE: t0.Add(2 * time.Second), Kernel: t0.Add(3 * time.Second), Booted: t0.Add(48 * time.Second)}}
	tests := []struct {
		name    string
		n       Node
		current string
		want    Summary
	}{
		{"current", n, "sha256:aa", Summary{State: "booted", Since: "12s", Phases: "dhcp 0s, ipxe 2s, kernel 3s, booted 48s", Digest: "sha256:aa"}},
		{"stale", n, "sha256:bb", Summary{State: "booted", Since: "12s", Phases: "dhcp 0s, ipxe 2s, kernel 3s, booted 48s", Digest: "sha256:aa", Stale: true}},
		{"never seen", Node{Name: "x"}, "sha256:bb", Summary{State: "unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Summarize(tc.n, tc.current, t0.Add(time.Minute))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestApplyOutOfOrder: reports written behind by two servers can arrive in
// any order; the record follows the time they were made.
func TestApplyOutOfOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		r  Report
		at time.Time
	}{
		{Report{State: DHCP}, t0},
		{Report{State: IPXE}, t0.Add(time.Second)},
		{Report{State: Kernel}, t0.Add(2 * time.Second)},
		{Report{State: Booted}, t0.Add(3 * time.Second)},
	}
	orders := map[string][]int{"in order": {0, 1, 2, 3}, "second server first": {1, 3, 0, 2}, "reversed": {3, 2, 1, 0}}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			n := Node{Name: "n1"}
			for _, i := range order {
				if _, err := Apply(&n, steps[i].r, steps[i].at); err != nil {
					t.Fatal(err)
				}
			}
			if n.State != Booted || len(n.Phases) != 4 || !n.Phases[DHCP].Equal(t0) {
				t.Fatalf("state %s, phases %v", n.State, n.Phases)
			}
		})
	}
}

func TestCloudInitPhase(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := &Node{Name: "n1"}
	if changed, _ := Apply(n, Report{State: CloudInit, Detail: "meta-data from 10.0.0.5"}, at); changed {
		t.Fatal("a fetch without a boot under way changed the record")
	}
	steps := []Report{{State: DHCP}, {State: Kernel}, {State: RootFS},
		{State: CloudInit, Detail: "meta-data from 10.0.0.5"}, {State: CloudInit, Detail: "user-data from 10.0.0.5"},
		{State: CloudInit, Detail: "meta-data from 10.0.0.5"}, {State: Booted}}
	for i, r := range steps {
		if _, err := Apply(n, r, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n.State != Booted || n.CloudInit != "meta-data user-data from 10.0.0.5" {
		t.Fatalf("state %s, cloud-init %q", n.State, n.CloudInit)
	}
	if s := Summarize(*n, "", at.Add(time.Minute)); !strings.Contains(s.Phases, "cloud-init 5s") || s.CloudInit == "" {
		t.Errorf("summary %+v: want the cloud-init phase and files", s)
	}
	Apply(n, Report{State: DHCP}, at.Add(time.Hour))
	if n.CloudInit != "" {
		t.Errorf("new boot kept cloud-init %q", n.CloudInit)
	}
}
