package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

func TestExpandTags(t *testing.T) {
	d := NewTagData("compute-base", strings.Repeat("0123456789abcdef", 4), time.Date(2026, 11, 22, 23, 59, 0, 0, time.FixedZone("x", -3600)))
	tests := []struct {
		name      string
		templates []string
		want      []string
		wantErr   string
	}{
		{"plain", []string{"latest"}, []string{"latest"}, ""},
		{"templates", []string{"{{ .Date }}", "{{ .CacheKey }}", "{{ .Name }}-{{ .Date }}"}, []string{"20261123", "0123456789ab", "compute-base-20261123"}, ""},
		{"full key", []string{"{{ .FullCacheKey }}"}, []string{strings.Repeat("0123456789abcdef", 4)}, ""},
		{"duplicates dropped", []string{"latest", "latest", "{{ .Date }}", "20261123"}, []string{"latest", "20261123"}, ""},
		{"unknown field", []string{"{{ .Nope }}"}, nil, "can't evaluate field Nope"},
		{"bad syntax", []string{"{{ .Date"}, nil, `tag "{{ .Date"`},
		{"invalid tag", []string{"a/b"}, nil, "not a valid OCI tag"},
		{"empty tag", []string{"{{ if false }}x{{ end }}"}, nil, "not a valid OCI tag"},
		{"reserved", []string{"sha256-abc.imgctl"}, nil, "reserves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandTags(tt.templates, d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRepository(t *testing.T) {
	tests := []struct {
		prefix, name, want, wantErr string
	}{
		{"127.0.0.1:5000/cluster", "compute-base", "127.0.0.1:5000/cluster/compute-base", ""},
		{"docker://reg.lab:5000/a/b/", "tiny", "reg.lab:5000/a/b/tiny", ""},
		{"", "tiny", "", "no registry given"},
		{"Reg.lab/UPPER", "tiny", "", "registry"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			got, err := Repository(tt.prefix, tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestTagConvention(t *testing.T) {
	d := digest.Digest("sha256:" + strings.Repeat("ab", 32))
	if got, want := ArtifactsTag(d), "sha256-"+strings.Repeat("ab", 32)+".imgctl"; got != want {
		t.Errorf("ArtifactsTag = %s, want %s", got, want)
	}
	if got, want := SignatureTag(d), "sha256-"+strings.Repeat("ab", 32)+".imgctl-sig"; got != want {
		t.Errorf("SignatureTag = %s, want %s", got, want)
	}
}

func TestParsePublishSpec(t *testing.T) {
	s, err := ParsePublishSpec(`{"registry":"r:5000/c","tags":["latest"]}`)
	if err != nil || s.Registry != "r:5000/c" || len(s.Tags) != 1 {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := ParsePublishSpec(`{"registy":"x"}`); err == nil {
		t.Fatal("unknown field accepted")
	}
	if s, err := ParsePublishSpec(""); err != nil || s.Registry != "" {
		t.Fatalf("empty label: %+v, %v", s, err)
	}
}
