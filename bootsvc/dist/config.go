package dist

import (
	"errors"
	"fmt"
	"time"
)

// Config is the "dist" section of the serve configuration: how the tree
// coordinator schedules sources. Zero fields take the defaults of
// WithDefaults.
type Config struct {
	// Fanout is how many children (one per stripe fetched from it) one node
	// serves at once; default Stripes. With every link at the same rate B
	// and k stripes, each node forwards its own stripe to k children at B/k
	// each: it uploads about B in all and receives k stripes at B/k.
	Fanout int `yaml:"fanout,omitempty" json:"fanout,omitempty"`
	// Stripes is how many contiguous ranges the image is cut into, each
	// distributed down its own tree (every node is an inner node in one
	// stripe's tree and a leaf in the others, so trees are log_k(N) deep
	// and every uplink is used); default 1 = one pipelined tree (with two
	// nodes, the second takes everything from the first); 2 for storms.
	Stripes int `yaml:"stripes,omitempty" json:"stripes,omitempty"`
	// SubPiece is the unit nodes verify and pass on, in bytes: the boot
	// service derives a sha256 per sub-piece from the root image after
	// checking it against the manifest's pieces; each hop of a tree delays
	// by about one sub-piece. Default 256 KiB; a power of two from 64 KiB to
	// the manifest's piece size.
	SubPiece int64 `yaml:"sub_piece,omitempty" json:"sub_piece,omitempty"`
	// ServerFanout caps the nodes fetching from the boot server itself at
	// once; 0 = no cap (the server is always the last resort).
	ServerFanout int `yaml:"server_fanout,omitempty" json:"server_fanout,omitempty"`
	// Stall is how long a node waits for bytes from its source before it
	// re-asks for another; default 15s.
	Stall time.Duration `yaml:"stall,omitempty" json:"stall,omitempty"`
	// SeedFor is how long a booted node keeps serving pieces from its in-RAM
	// image after switch-root; default 10m, negative = not at all.
	SeedFor time.Duration `yaml:"seed_for,omitempty" json:"seed_for,omitempty"`
	// PeerPort is the TCP port nodes serve pieces on; default 7073.
	PeerPort int `yaml:"peer_port,omitempty" json:"peer_port,omitempty"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Stripes == 0 {
		c.Stripes = 1
	}
	if c.Fanout == 0 {
		c.Fanout = c.Stripes
	}
	if c.SubPiece == 0 {
		c.SubPiece = 256 << 10
	}
	if c.Stall == 0 {
		c.Stall = 15 * time.Second
	}
	if c.SeedFor == 0 {
		c.SeedFor = 10 * time.Minute
	}
	if c.PeerPort == 0 {
		c.PeerPort = 7073
	}
	return c
}

// Validate returns every problem with the section, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Fanout < 0 {
		errs = append(errs, fmt.Errorf("dist.fanout %d: negative", c.Fanout))
	}
	if c.ServerFanout < 0 {
		errs = append(errs, fmt.Errorf("dist.server_fanout %d: negative", c.ServerFanout))
	}
	if c.Stripes < 0 || c.Stripes > 16 {
		errs = append(errs, fmt.Errorf("dist.stripes %d: want 1-16", c.Stripes))
	}
	if c.SubPiece != 0 && (c.SubPiece < 64<<10 || c.SubPiece&(c.SubPiece-1) != 0) {
		errs = append(errs, fmt.Errorf("dist.sub_piece %d: want a power of two of at least 65536", c.SubPiece))
	}
	if c.Stall < 0 {
		errs = append(errs, fmt.Errorf("dist.stall %s: negative", c.Stall))
	}
	if c.PeerPort < 0 || c.PeerPort > 65535 {
		errs = append(errs, fmt.Errorf("dist.peer_port %d: want 1-65535", c.PeerPort))
	}
	if c.Stall > 0 && c.Stall < time.Second {
		errs = append(errs, errors.New("dist.stall: under 1s would call every busy peer stalled"))
	}
	return errors.Join(errs...)
}
