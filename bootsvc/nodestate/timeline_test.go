package nodestate

import (
	"strings"
	"testing"
	"time"
)

func TestTimelineSummary(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := &Node{Name: "nid001"}
	tl := &Timeline{KernelS: 4.2, InitrdS: 40.5, UserspaceS: 21.34, Slowest: []UnitTime{
		{"a.service", 9}, {"b.service", 2.1}, {"c.mount", 1}, {"d.service", 0.5}}}
	for i, r := range []Report{{State: DHCP}, {State: RootFS}, {State: Booted, Timeline: tl}} {
		if _, err := Apply(n, r, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	tl.Slowest[0].Unit = "changed.service" // the record holds its own copy
	s := Summarize(*n, "", t0.Add(time.Minute))
	if s.Userspace != "21.3s" || s.Slowest != "a.service 9.0s, b.service 2.1s, c.mount 1.0s" {
		t.Errorf("summary userspace %q, slowest %q", s.Userspace, s.Slowest)
	}
	if got := n.Timeline.String(); !strings.HasPrefix(got, "kernel 4.2s, initrd 40.5s, userspace 21.3s; slowest: a.service 9.0s") {
		t.Errorf("String() = %q", got)
	}
	if _, err := Apply(n, Report{State: DHCP}, t0.Add(time.Hour)); err != nil || n.Timeline != nil {
		t.Errorf("new boot: timeline %+v, err %v; want none", n.Timeline, err)
	}
	if s := Summarize(*n, "", t0.Add(time.Hour)); s.Userspace != "" || s.Slowest != "" {
		t.Errorf("no timeline, summary %+v", s)
	}
}
