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
	// Fanout is how many children one node serves at once; default 1. With
	// every link at the same rate B, a pipelined chain (fan-out 1) moves the
	// image at B on every link, while fan-out k splits a node's uplink k ways.
	Fanout int `yaml:"fanout,omitempty" json:"fanout,omitempty"`
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
	if c.Fanout == 0 {
		c.Fanout = 1
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
