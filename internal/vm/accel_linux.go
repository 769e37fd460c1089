package vm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// KVM ioctl numbers from <linux/kvm.h> (KVMIO = 0xAE).
const (
	kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)
	kvmCreateVM      = 0xAE01 // _IO(KVMIO, 0x01)
	kvmAPIVersion    = 12     // the stable API every kernel since 2.6.22 reports
)

// createVM checks the KVM API version and creates (and closes) a VM on dev.
// A regular file in place of the device fails with ENOTTY.
func createVM(dev *os.File) error {
	fd := int(dev.Fd())
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("KVM API version %d, want %d", v, kvmAPIVersion)
	}
	vmfd, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return err
	}
	return unix.Close(vmfd)
}
