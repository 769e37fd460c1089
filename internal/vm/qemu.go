// Package vm boots an inventory node as a QEMU virtual machine over the
// network: a bridge and a tap in a private network namespace, the boot
// service inside that namespace, and QEMU network-booting through Debian's
// iPXE ROM. It watches the serial console for the boot phases and stops the
// machine as soon as the caller says the node booted. `imgctl vm boot` and the
// end-to-end tests use it.
package vm

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// DefaultROM is the iPXE ROM of Debian's ipxe-qemu for virtio-net. It carries
// PCI ID 1af4:1041, so the device must be modern-only (disable-legacy=on) or
// the BIOS reports "No bootable device".
const DefaultROM = "/usr/lib/ipxe/qemu/pxe-virtio.rom"

// TCGCmdline is added to a guest's kernel command line when QEMU emulates
// (TCG). With address-space randomisation every process maps bash, libc and
// libsystemd at other virtual addresses, and TCG translates the same physical
// code page once per address: pages collect thousands of translation blocks,
// and every guest store to such a page later (the initramfs's pages freed at
// switch-root and reused, the page cache recycled) makes QEMU walk that list
// once per 8-byte store. The vCPU then stops for seconds at a time
// ("clocksource: Long readout interval"), 75-100 s in all, mostly right after
// switch-root (HACKING.md, "The live-root stall"). Real hardware and KVM have no
// translation cache, so nodes there keep randomisation.
const TCGCmdline = "norandmaps"

// Machine is one QEMU guest booting from the network.
type Machine struct {
	MAC       string // the node's inventory MAC
	Tap       string // tap device QEMU opens (it must exist in QEMU's namespace)
	SerialLog string // file the serial console is written to
	MemoryMiB int    // 0 = 1024
	Accel     Accel  // "" = AccelTCG; AccelKVM only after a Prober said it works
	ROM       string // "" = DefaultROM
}

// Args returns qemu-system-x86_64's arguments for m.
func (m Machine) Args() ([]string, error) {
	hw, err := net.ParseMAC(m.MAC)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("machine MAC %q: not an Ethernet MAC", m.MAC)
	}
	if m.Tap == "" || m.SerialLog == "" {
		return nil, fmt.Errorf("machine %s: needs a tap device and a serial log file", hw)
	}
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	rom := m.ROM
	if rom == "" {
		rom = DefaultROM
	}
	if _, err := os.Stat(rom); err != nil {
		return nil, fmt.Errorf("iPXE ROM: %w (install ipxe-qemu)", err)
	}
	// qemu64 without svm: the guest then does not load kvm_amd, which caused
	// 20 s soft lockups under TCG.
	accel, cpu := "tcg,thread=multi", "qemu64,-svm"
	switch m.Accel {
	case "", AccelTCG:
	case AccelKVM:
		accel, cpu = "kvm", "host"
	default:
		return nil, fmt.Errorf("machine %s: accelerator %q: want %s or %s", hw, m.Accel, AccelTCG, AccelKVM)
	}
	return []string{
		"-machine", "pc", "-accel", accel, "-cpu", cpu, "-smp", "1",
		"-m", strconv.Itoa(mem),
		"-nodefaults", "-nographic", "-monitor", "none", "-no-reboot",
		"-chardev", "file,id=s0,path=" + m.SerialLog, "-serial", "chardev:s0",
		"-netdev", "tap,id=n0,ifname=" + m.Tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + hw.String() + ",disable-legacy=on,romfile=" + rom,
		"-boot", "n",
	}, nil
}
