// Package bootspec decides what a machine boots: given the client (MAC,
// address, firmware), it finds the node and its image and returns a Spec —
// kernel, initrds, kernel arguments and the root source — or ErrNotManaged.
// The protocol servers only render or serve Specs (pixiecore's Booter split):
// a new boot mode is a new case in Resolve and its table test, not an edit of
// an HTTP or DHCP handler.
package bootspec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/images"
)

// ErrNotManaged says the client is no node of this boot service; it should
// be told to wait and ask again (adding it to the inventory boots it).
var ErrNotManaged = errors.New("not managed here")

// Client is the machine asking.
type Client struct {
	MAC  net.HardwareAddr // nil: look the node up by IP
	IP   netip.Addr       // the address the request came from
	Arch string           // firmware architecture: ArchBIOS, ArchUEFIx64, … ("" unknown)
	IPXE bool             // the firmware is iPXE already (it asks for its script)
}

// RootKind is where a node's root filesystem comes from.
type RootKind string

// Root kinds.
const (
	RootLive RootKind = "live" // the root image fetched over HTTP into RAM
	RootNFS  RootKind = "nfs"  // a read-only NFS export under a RAM overlay
)

// Root is the node's root source.
type Root struct {
	Kind RootKind
	URL  string // live: the root image; nfs: nfs://host/path
	// NFSHost and NFSPath name the export (nfs only).
	NFSHost, NFSPath string
}

// Initrd is one initrd the boot loader hands the kernel, under Name (the
// name the EFI stub loads it by).
type Initrd struct {
	Name string
	URL  string
}

// Spec is everything one node boots.
type Spec struct {
	Node     inventory.Node
	MAC      string        // the MAC the node boots from
	Image    *images.Entry // the artifact set
	Kernel   string        // URL
	Initrds  []Initrd      // initramfs first, then the node's overlay
	Args     []string      // kernel command line, in order
	Root     Root
	Manifest string // URL of the set's manifest
	Token    string // the node's token, bound to its name, MAC and address
}

// Cmdline is Args as one kernel command line, whitespace normalised.
func (s Spec) Cmdline() string {
	var out []string
	for _, a := range s.Args {
		out = append(out, strings.Fields(a)...)
	}
	return strings.Join(out, " ")
}

// Nodes finds nodes; a store.Store satisfies it.
type Nodes interface {
	Snapshot(ctx context.Context) (*inventory.Inventory, error)
	NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error)
	NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error)
}

// Artifacts finds an image's current artifact set; *images.Store satisfies it.
type Artifacts interface {
	Current(name string) (*images.Entry, error)
}

// NFSRoots tells where an image set's NFS root is exported.
type NFSRoots interface {
	Export(name, digest string) (host, path string, err error)
}

// Config is what the resolver needs to know of the boot service.
type Config struct {
	PublicURL string  // base URL nodes reach the HTTP service at
	Console   string  // console= argument, if any
	ScriptURL string  // the iPXE script URL DHCP hands iPXE (iPXE expands ${net0/mac})
	Loaders   Loaders // TFTP files for PXE firmware
	Tree      *Tree   // the tree coordinator; nil: tree nodes are refused
}

// Resolver resolves Specs. It is safe for concurrent use.
type Resolver struct {
	cfg       Config
	nodes     Nodes
	artifacts Artifacts
	nfs       NFSRoots // nil: NFS-mode nodes are refused
	tokens    *nodetoken.Tokens
	cloudInit cloudinit.Getter // nil: no node gets a cloud-init seed (cloudinit.go)
}

// New returns a resolver; nfs may be nil, and so may nodes, artifacts and
// tokens for a resolver asked only for BootFile.
func New(cfg Config, nodes Nodes, artifacts Artifacts, nfs NFSRoots, tokens *nodetoken.Tokens) *Resolver {
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Resolver{cfg: cfg, nodes: nodes, artifacts: artifacts, nfs: nfs, tokens: tokens}
}

// Error is a failure to boot a known node: the node is named so that its
// record can say why.
type Error struct {
	Node string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Resolve returns what the client boots. Unknown clients get ErrNotManaged;
// a known node that cannot boot gets an *Error naming it.
func (r *Resolver) Resolve(ctx context.Context, c Client) (Spec, error) {
	var n inventory.Node
	var err error
	mac := ""
	if c.MAC != nil {
		mac = c.MAC.String()
		n, err = r.nodes.NodeByMAC(ctx, c.MAC)
	} else {
		n, err = r.nodes.NodeByIP(ctx, c.IP)
		if err == nil && len(n.MACs) > 0 {
			mac = n.MACs[0]
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return Spec{}, ErrNotManaged
	}
	if err != nil {
		return Spec{}, fmt.Errorf("resolve %s: %w", orIP(mac, c.IP), err)
	}
	spec, err := r.node(n, mac, c)
	if err == nil {
		err = r.addCloudInit(ctx, &spec)
	}
	if err != nil {
		return spec, &Error{Node: n.Name, Err: err}
	}
	return spec, nil
}

// Specs resolves every inventory node, for servers that prepare ahead what
// nodes will ask for (NFS exports). Nodes that cannot boot are left out and
// named in the error; the others are returned all the same.
func (r *Resolver) Specs(ctx context.Context) ([]Spec, error) {
	inv, err := r.nodes.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve nodes: %w", err)
	}
	var out []Spec
	var errs []error
	for _, n := range inv.Nodes() {
		mac := ""
		if len(n.MACs) > 0 {
			mac = n.MACs[0]
		}
		var c Client
		if a, err := netip.ParseAddr(n.IP); err == nil {
			c.IP = a
		}
		spec, err := r.node(n, mac, c)
		if err == nil {
			err = r.addCloudInit(ctx, &spec)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, spec)
	}
	return out, errors.Join(errs...)
}

func (r *Resolver) node(n inventory.Node, mac string, c Client) (Spec, error) {
	spec := Spec{Node: n, MAC: mac}
	if n.Image == "" {
		return spec, fmt.Errorf("node %s has no image in the inventory", n.Name)
	}
	e, err := r.artifacts.Current(n.Image)
	if err != nil {
		return spec, err
	}
	spec.Image = e
	m := e.Manifest
	tokIP := n.IP
	if tokIP == "" {
		tokIP = c.IP.String()
	}
	if r.tokens != nil { // nil: nothing will check one (HTTP off)
		spec.Token = r.tokens.Make(n.Name, mac, tokIP)
	}
	setURL := r.cfg.PublicURL + "/artifacts/" + url.PathEscape(m.Name) + "/" + images.DigestHex(m.ImageDigest) + "/"
	art := func(kind string) (string, error) {
		a, ok := m.Artifacts[kind]
		if !ok {
			return "", fmt.Errorf("image %s@%s has no %s", m.Name, m.ImageDigest, kind)
		}
		return setURL + url.PathEscape(a.File), nil
	}
	if spec.Kernel, err = art(images.Kernel); err != nil {
		return spec, err
	}
	initrd, err := art(images.Initramfs)
	if err != nil {
		return spec, err
	}
	spec.Initrds = []Initrd{
		{Name: "initrd", URL: initrd},
		{Name: "overlay", URL: r.cfg.PublicURL + "/nodes/" + url.PathEscape(n.Name) + "/overlay.cpio.zst?token=" + spec.Token},
	}
	spec.Manifest = setURL + images.ManifestFile
	mode := n.Mode
	if mode == "" {
		mode = inventory.ModeLive
	}
	spec.Args = []string{
		"initrd=initrd", "initrd=overlay", // names the EFI stub loads; BIOS ignores them
		m.Cmdline, n.Cmdline,
		"BOOTIF=01-${netX/mac:hexhyp}",
		"systemd.hostname=" + n.Name,
		"ip=dhcp rd.neednet=1",
		"imgctl.url=" + r.cfg.PublicURL,
		"imgctl.node=" + n.Name,
		"imgctl.token=" + spec.Token,
		"imgctl.mode=" + string(mode),
		"imgctl.manifest=" + spec.Manifest,
	}
	if r.cfg.Console != "" {
		spec.Args = append(spec.Args, "console="+r.cfg.Console)
	}
	switch mode {
	case inventory.ModeLive:
		root, err := art(images.RootFS)
		if err != nil {
			return spec, err
		}
		spec.Root = Root{Kind: RootLive, URL: root}
		spec.Args = append(spec.Args, "imgctl.root="+root)
		if err := r.distribution(&spec, n); err != nil {
			return spec, err
		}
	case inventory.ModeNFS:
		if r.nfs == nil {
			return spec, fmt.Errorf("node %s wants an NFS root but the NFS server is not configured", n.Name)
		}
		host, path, err := r.nfs.Export(m.Name, m.ImageDigest)
		if err != nil {
			return spec, err
		}
		spec.Root = Root{Kind: RootNFS, URL: "nfs://" + host + path, NFSHost: host, NFSPath: path}
		spec.Args = append(spec.Args, "imgctl.root="+spec.Root.URL, "root=nfs4:"+host+":"+path+":ro", "rootovl")
		if d := n.Distribution; d == inventory.DistTree || d == inventory.DistMulticast {
			return spec, fmt.Errorf("node %s: distribution %s needs mode live (an NFS root is not copied)", n.Name, d)
		}
	default:
		return spec, fmt.Errorf("node %s: unknown mode %q", n.Name, mode)
	}
	return spec, nil
}

func orIP(mac string, ip netip.Addr) string {
	if mac != "" {
		return mac
	}
	return ip.String()
}
