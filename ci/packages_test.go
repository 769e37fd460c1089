package ci

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const status = `Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b7

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9
Description: GNU C Library
 a continuation line: with a colon

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
`

func TestReadDpkgStatus(t *testing.T) {
	got, err := ReadDpkgStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bash": "5.2.15-2+b7", "libc6:i386": "2.36-9", "tzdata": "2024a-0+deb12u1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name           string
		old, cur       map[string]string
		added, removed []Package
		changed        []Change
	}{
		{name: "same", old: map[string]string{"a": "1"}, cur: map[string]string{"a": "1"}},
		{
			name:    "all kinds",
			old:     map[string]string{"a": "1", "b": "2", "gone": "9"},
			cur:     map[string]string{"a": "1", "b": "3", "new": "0.1"},
			added:   []Package{{"new", "0.1"}},
			removed: []Package{{"gone", "9"}},
			changed: []Change{{"b", "2", "3"}},
		},
		{name: "from nothing", cur: map[string]string{"z": "1", "y": "2"}, added: []Package{{"y", "2"}, {"z", "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, r, c := Diff(tt.old, tt.cur)
			if d := cmp.Diff(tt.added, a); d != "" {
				t.Errorf("added:\n%s", d)
			}
			if d := cmp.Diff(tt.removed, r); d != "" {
				t.Errorf("removed:\n%s", d)
			}
			if d := cmp.Diff(tt.changed, c); d != "" {
				t.Errorf("changed:\n%s", d)
			}
		})
	}
}
