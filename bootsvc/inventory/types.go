// Package inventory is the boot service's view of the cluster: nodes, groups,
// their MACs, addresses, images, boot modes, overlay variables and BMCs, kept in
// one YAML file (nodes.yaml). Group values merge into node values; the node wins.
package inventory

import "time"

// BootMode is how a node mounts its root.
type BootMode string

// Boot modes.
const (
	ModeLive BootMode = "live" // squashfs fetched over the network, under a RAM overlay
	ModeNFS  BootMode = "nfs"  // read-only NFS root under a RAM overlay
)

// Root image distribution modes.
const (
	DistHTTP = "http" // every node fetches the image from the boot service
	DistTree = "tree" // nodes fetch from the server or from peers (bootsvc/dist)
)

// File is the on-disk form of nodes.yaml.
type File struct {
	Groups map[string]*Group `yaml:"groups,omitempty" json:"groups,omitempty"`
	Nodes  map[string]*Node  `yaml:"nodes,omitempty" json:"nodes,omitempty"`
}

// Settings are the values a group gives its nodes and a node may override.
// Empty fields are "not set" and inherit from the groups.
type Settings struct {
	Image        string            `yaml:"image,omitempty" json:"image,omitempty"`                             // artifact/image name, e.g. compute-base
	Mode         BootMode          `yaml:"mode,omitempty" json:"mode,omitempty"`                               // live | nfs
	Cmdline      string            `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`                         // appended to the image's cmdline
	Netmask      string            `yaml:"netmask,omitempty" json:"netmask,omitempty"`                         // dotted or /prefix
	Gateway      string            `yaml:"gateway,omitempty" json:"gateway,omitempty"`                         // router option
	DNS          []string          `yaml:"dns,omitempty" json:"dns,omitempty"`                                 // name servers
	Domain       string            `yaml:"domain,omitempty" json:"domain,omitempty"`                           // domain name option
	Vars         map[string]string `yaml:"vars,omitempty" json:"vars,omitempty"`                               // overlay template variables
	Overlays     []string          `yaml:"overlays,omitempty" json:"overlays,omitempty"`                       // extra overlay template dirs
	SSHKeys      []string          `yaml:"ssh_authorized_keys,omitempty" json:"ssh_authorized_keys,omitempty"` // root's authorized_keys on the node
	BMC          *BMC              `yaml:"bmc,omitempty" json:"bmc,omitempty"`                                 // BMC defaults (user, protocol)
	Distribution string            `yaml:"distribution,omitempty" json:"distribution,omitempty"`               // http (default) | tree | multicast
	Rack         string            `yaml:"rack,omitempty" json:"rack,omitempty"`                               // topology label: tree sources prefer the same rack
	Switch       string            `yaml:"switch,omitempty" json:"switch,omitempty"`                           // topology label: then the same switch
	Multicast    *Multicast        `yaml:"multicast,omitempty" json:"multicast,omitempty"`                     // group, port, rate (distribution multicast)
}

// Group is a named set of settings nodes can join.
type Group struct {
	Settings `yaml:",inline"`
}

// Node is one machine. Name is the map key in File.Nodes.
type Node struct {
	Name       string    `yaml:"-" json:"name"`
	MACs       []string  `yaml:"macs,omitempty" json:"macs,omitempty"` // lower-case, colon separated
	IP         string    `yaml:"ip,omitempty" json:"ip,omitempty"`
	Groups     []string  `yaml:"groups,omitempty" json:"groups,omitempty"`         // merged in order; later wins
	Discovered time.Time `yaml:"discovered,omitempty" json:"discovered,omitempty"` // set by the DHCP discovery policy
	Settings   `yaml:",inline"`
}

// BMC is how to reach a node's baseboard management controller. Passwords may
// live here or in a separate 0600 secrets file; they are never printed or logged.
type BMC struct {
	Address  string `yaml:"address,omitempty" json:"address,omitempty"`   // host[:port] or URL
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"` // redfish | ipmi | auto
	User     string `yaml:"user,omitempty" json:"user,omitempty"`
	Password string `yaml:"password,omitempty" json:"-"`
	Insecure bool   `yaml:"insecure,omitempty" json:"insecure,omitempty"` // skip TLS verification (Redfish)
}
