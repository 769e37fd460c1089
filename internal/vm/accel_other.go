//go:build !linux

package vm

import (
	"errors"
	"os"
)

// createVM: KVM is Linux only.
func createVM(*os.File) error { return errors.New("KVM is Linux only") }
