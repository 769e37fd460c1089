package tftp

import (
	"testing"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"undionly.kpxe", "undionly.kpxe", true},
		{"/undionly.kpxe", "undionly.kpxe", true},
		{"efi//ipxe.efi", "efi/ipxe.efi", true},
		{"../etc/passwd", "", false},
		{"a/../../b", "", false},
		{"/..", "", false},
		{"a\\..\\b", "", false},
		{"a\x00b", "", false},
		{"", "", false},
		{"/", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := clean(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("clean(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := Config{Listen: "nope", Root: "/nonexistent-imgctl", Timeout: 0, MaxBlockSize: 70000}
	err := c.Validate()
	for _, want := range []string{"tftp.listen", "tftp.root", "tftp.timeout", "tftp.max_block_size"} {
		if err == nil || !containsStr(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "../x", "/a/./b", "a/..", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := clean(name)
		if err != nil {
			return
		}
		if p == ".." || len(p) >= 3 && (p[:3] == "../" || p[len(p)-3:] == "/..") || p[0] == '/' {
			t.Fatalf("clean(%q) = %q escapes the root", name, p)
		}
	})
}
