package dist

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"zero is the defaults", Config{}, ""},
		{"negative fanout", Config{Fanout: -1}, "dist.fanout"},
		{"negative server fanout", Config{ServerFanout: -2}, "dist.server_fanout"},
		{"stall too short", Config{Stall: 10 * time.Millisecond}, "dist.stall"},
		{"port out of range", Config{PeerPort: 70000}, "dist.peer_port"},
		{"seeding off", Config{SeedFor: -1}, ""},
		{"too many stripes", Config{Stripes: 17}, "dist.stripes"},
		{"sub-piece not a power of two", Config{SubPiece: 300 << 10}, "dist.sub_piece"},
		{"sub-piece too small", Config{SubPiece: 4096}, "dist.sub_piece"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Fanout != 1 || d.Stripes != 1 || d.SubPiece != 256<<10 || d.Stall != 15*time.Second || d.SeedFor != 10*time.Minute || d.PeerPort != 7073 {
		t.Errorf("defaults = %+v", d)
	}
	if d := (Config{Stripes: 2}).WithDefaults(); d.Fanout != 2 {
		t.Errorf("fan-out with 2 stripes = %d, want 2", d.Fanout)
	}
}
