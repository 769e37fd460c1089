package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildTimeline(t *testing.T) {
	mgr := parseShow("InitRDTimestampMonotonic=5100000\nUserspaceTimestampMonotonic=20300000\n")
	target := parseShow("ActiveEnterTimestampMonotonic=50500000\n")
	units := parseShow(`Id=slow.service
InactiveExitTimestampMonotonic=21000000
ActiveEnterTimestampMonotonic=30000000
InactiveEnterTimestampMonotonic=0

Id=oneshot.service
InactiveExitTimestampMonotonic=22000000
ActiveEnterTimestampMonotonic=0
InactiveEnterTimestampMonotonic=24500000

Id=never.service
InactiveExitTimestampMonotonic=0
ActiveEnterTimestampMonotonic=0
InactiveEnterTimestampMonotonic=0

Id=sys-subsystem-net-devices-ens2.device
InactiveExitTimestampMonotonic=1000000
ActiveEnterTimestampMonotonic=40000000
InactiveEnterTimestampMonotonic=0

Id=multi-user.target
InactiveExitTimestampMonotonic=21000000
ActiveEnterTimestampMonotonic=50500000
InactiveEnterTimestampMonotonic=0

Id=running.service
InactiveExitTimestampMonotonic=50600000
ActiveEnterTimestampMonotonic=0
InactiveEnterTimestampMonotonic=0
`)
	got, err := buildTimeline(mgr, target, units)
	if err != nil {
		t.Fatal(err)
	}
	want := &timeline{KernelS: 5.1, InitrdS: 15.2, UserspaceS: 30.2,
		Slowest: []unitTime{{"slow.service", 9}, {"oneshot.service", 2.5}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("timeline (-want +got):\n%s", d)
	}

	for name, c := range map[string]struct{ mgr, target string }{
		"target not reached": {"UserspaceTimestampMonotonic=20300000\n", "ActiveEnterTimestampMonotonic=0\n"},
		"no properties":      {"", ""},
	} {
		if _, err := buildTimeline(parseShow(c.mgr), parseShow(c.target), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
