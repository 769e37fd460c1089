package overlay

import (
	"fmt"
	"io"
	"strings"
)

// newcWriter writes a cpio archive in the "newc" format the kernel unpacks
// initramfs archives from (Documentation/driver-api/early-userspace). It keeps
// device numbers, owners, modes and mtimes as given.
type newcWriter struct {
	w     io.Writer
	ino   uint32
	wrote int64
}

// header is one archive entry. Mode carries the file type bits (S_IFREG…).
type header struct {
	Name         string
	Mode         uint32
	UID, GID     uint32
	Mtime        int64
	Size         int64
	Major, Minor uint32 // device number for character and block devices
}

// File type bits of a cpio mode.
const (
	sIFDIR  = 0o040000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFCHR  = 0o020000
	sIFBLK  = 0o060000
	sIFIFO  = 0o010000
	trailer = "TRAILER!!!"
)

func (c *newcWriter) write(p []byte) error {
	n, err := c.w.Write(p)
	c.wrote += int64(n)
	return err
}

func (c *newcWriter) pad() error {
	if r := c.wrote % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// WriteEntry writes h and then body (exactly h.Size bytes; for symlinks the
// target).
func (c *newcWriter) WriteEntry(h header, body io.Reader) error {
	if strings.ContainsRune(h.Name, 0) {
		return fmt.Errorf("cpio: name %q has a NUL byte", h.Name)
	}
	c.ino++
	nlink := 1
	if h.Mode&0o170000 == sIFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, h.Mode, h.UID, h.GID, nlink, uint32(h.Mtime), uint32(h.Size), 0, 0, h.Major, h.Minor, len(h.Name)+1, 0)
	if err := c.write([]byte(hdr)); err != nil {
		return err
	}
	if err := c.write(append([]byte(h.Name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if h.Size > 0 {
		n, err := io.CopyN(c.w, body, h.Size)
		c.wrote += n
		if err != nil {
			return fmt.Errorf("cpio: %s: %w", h.Name, err)
		}
	}
	return c.pad()
}

// Close writes the trailer entry.
func (c *newcWriter) Close() error {
	return c.WriteEntry(header{Name: trailer}, nil)
}
