package nfs

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"disabled needs nothing", Config{}, nil},
		{"ok", Config{Enabled: true, Address: "10.44.0.1"}, nil},
		{"bad", Config{Enabled: true, Address: "0.0.0.0", Port: 70000, Pseudo: "rel", LogLevel: "LOUD"},
			[]string{"nfs.address", "nfs.port 70000", "nfs.pseudo \"rel\"", "nfs.log_level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			if err := tc.cfg.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d errors", got, len(tc.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestGaneshaConfig(t *testing.T) {
	c := Config{Enabled: true, Address: "10.44.0.1"}.withDefaults()
	got := ganeshaConfig(c, "/var/lib/imgctl", []export{
		{ID: 1, Path: "/var/lib/imgctl/mnt/a/01", Pseudo: "/imgctl/a/01"},
		{ID: 2, Path: "/var/lib/imgctl/mnt/b/02", Pseudo: "/imgctl/b/02"},
	})
	for _, want := range []string{
		"Protocols = 4;", "NFS_Port = 2049;", "Bind_addr = 10.44.0.1;", "Graceless = true;",
		"Allow_Numeric_Owners = true;", "Only_Numeric_Owners = true;", `RecoveryRoot = "/var/lib/imgctl/nfs/recovery";`,
		"Export_Id = 2;", `Path = "/var/lib/imgctl/mnt/b/02";`, `Pseudo = "/imgctl/b/02";`,
		"Access_Type = RO;", "Squash = No_Root_Squash;", "Name = VFS;",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "EXPORT {"); n != 2 {
		t.Errorf("%d exports, want 2", n)
	}
}
