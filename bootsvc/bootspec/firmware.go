package bootspec

// Loaders name, per firmware architecture, the iPXE build PXE firmware
// fetches over TFTP (RFC 4578 option 93 says which architecture asks).
type Loaders struct {
	BIOS  string // arch 0
	UEFI  string // arch 7, 9 (x86-64 UEFI)
	ARM64 string // arch 11
}

// Firmware architectures, as Client.Arch names them.
const (
	ArchBIOS      = "bios"
	ArchUEFIx64   = "uefi-x64"
	ArchUEFIARM64 = "uefi-arm64"
)

// BootFile is what DHCP hands a booting machine: iPXE gets the HTTP URL of
// its script, other PXE firmware the TFTP file that turns it into iPXE. Both
// empty: nothing to boot (an architecture without a loader).
type BootFile struct {
	URL  string
	TFTP string
}

// BootFile is the first step of every boot. It needs no inventory entry:
// firmware of a machine being discovered chains into iPXE the same way, and
// the iPXE script then says whether the machine is managed here.
func (r *Resolver) BootFile(c Client) BootFile {
	if c.IPXE {
		return BootFile{URL: r.cfg.ScriptURL}
	}
	switch c.Arch {
	case ArchBIOS:
		return BootFile{TFTP: r.cfg.Loaders.BIOS}
	case ArchUEFIx64:
		return BootFile{TFTP: r.cfg.Loaders.UEFI}
	case ArchUEFIARM64:
		return BootFile{TFTP: r.cfg.Loaders.ARM64}
	}
	return BootFile{}
}
