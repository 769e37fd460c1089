package hostlist

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"single", "login1", []string{"login1"}},
		{"padded range", "nid[001-003]", []string{"nid001", "nid002", "nid003"}},
		{"range and list", "nid[001-002,010]", []string{"nid001", "nid002", "nid010"}},
		{"two parts", "a[1-2],b", []string{"a1", "a2", "b"}},
		{"cross product", "r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"ip", "10.0.0.[1-3]", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"suffix", "n[8-10]-ib", []string{"n8-ib", "n9-ib", "n10-ib"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Expand(%q) (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	for _, in := range []string{"", "nid[", "nid]", "nid[3-1]", "nid[a-b]", "nid[]", "n[[1]]", "n[0-99999999]"} {
		t.Run(in, func(t *testing.T) {
			if got, err := Expand(in); err == nil {
				t.Errorf("Expand(%q) = %v, want error", in, got)
			}
		})
	}
}

func TestCompress(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"run", []string{"nid003", "nid001", "nid002", "nid007"}, "nid[001-003,007]"},
		{"single", []string{"nid001"}, "nid001"},
		{"plain", []string{"login", "admin"}, "admin,login"},
		{"unpadded", []string{"n9", "n10", "n8"}, "n[8-10]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compress(tt.in); got != tt.want {
				t.Errorf("Compress(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"nid[001-009]", "a[1-2],b[3,5-6]", "10.0.0.[1-9]", "x[", "]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := Expand(s)
		if err != nil {
			return
		}
		if len(names) > MaxHosts {
			t.Fatalf("Expand(%q) returned %d names", s, len(names))
		}
		// Round trip: compressing and expanding again yields the same set.
		again, err := Expand(Compress(names))
		if err != nil {
			if strings.ContainsAny(s, " \t") {
				return
			}
			t.Fatalf("Expand(Compress(%q)): %v", s, err)
		}
		seen := map[string]bool{}
		for _, n := range names {
			seen[n] = true
		}
		if len(again) != len(seen) {
			t.Fatalf("round trip of %q: %d names, want %d", s, len(again), len(seen))
		}
	})
}
