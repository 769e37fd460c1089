// Package overlay renders a node's overlay: the templated files of its image
// (/etc/imgctl/overlay, carried in the artifact set) and of the inventory's
// overlay directories, filled in for one node and packed as a newc cpio that
// iPXE hands the kernel as a second initrd. The dracut module copies it from
// /imgctl-overlay onto the new root.
package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/template"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Prefix is where the archive's files land in the initramfs.
const Prefix = "imgctl-overlay"

// TemplateSuffix marks files rendered with text/template (the suffix is dropped).
const TemplateSuffix = ".tmpl"

// Data is what templates see, e.g. {{ .Hostname }} or {{ index .Vars "slurm_conf" }}.
type Data struct {
	Node              string            `json:"node" yaml:"node"`
	Hostname          string            `json:"hostname" yaml:"hostname"`
	IP                string            `json:"ip" yaml:"ip"`
	MAC               string            `json:"mac" yaml:"mac"`
	Image             string            `json:"image" yaml:"image"`
	ImageDigest       string            `json:"image_digest" yaml:"image_digest"`
	Vars              map[string]string `json:"vars" yaml:"vars"`
	SSHAuthorizedKeys []string          `json:"ssh_authorized_keys" yaml:"ssh_authorized_keys"`
	SSHHostKeys       []HostKey         `json:"ssh_host_keys" yaml:"ssh_host_keys"`
}

// HostKey is one of the node's SSH host key pairs. The private half is kept
// out of JSON so it never reaches logs or cache keys.
type HostKey struct {
	Type    string `json:"type" yaml:"type"` // ssh_host_<Type>_key
	Private []byte `json:"-" yaml:"-"`
	Public  []byte `json:"public" yaml:"public"`
}

// Validate reports what a node's data lacks.
func (d Data) Validate() error {
	var errs []error
	if d.Node == "" {
		errs = append(errs, errors.New("overlay data: node name is empty"))
	}
	if strings.ContainsAny(d.Hostname, "/ \n\t") {
		errs = append(errs, fmt.Errorf("overlay data: hostname %q is not a host name", d.Hostname))
	}
	return errors.Join(errs...)
}

// entry is one file of the merged overlay tree: a source file, or (info
// nil) a built-in one with mode and body.
type entry struct {
	rel  string // path inside the overlay, slash-separated, no leading slash
	path string // source file
	info fs.FileInfo
	mode uint32 // built-in entries: type and permission bits
	body []byte
}

// builtins are the entries every node gets unless a template directory
// provides the same path: its hostname from the inventory, its own SSH host
// keys and root's authorized keys.
func builtins(data Data) []entry {
	out := []entry{
		{rel: "etc", mode: sIFDIR | 0o755},
		{rel: "etc/hostname", mode: sIFREG | 0o644, body: []byte(data.Hostname + "\n")},
	}
	if len(data.SSHHostKeys) > 0 {
		out = append(out, entry{rel: "etc/ssh", mode: sIFDIR | 0o755})
	}
	for _, k := range data.SSHHostKeys {
		name := "etc/ssh/ssh_host_" + k.Type + "_key"
		out = append(out,
			entry{rel: name, mode: sIFREG | 0o600, body: k.Private},
			entry{rel: name + ".pub", mode: sIFREG | 0o644, body: k.Public})
	}
	if len(data.SSHAuthorizedKeys) > 0 {
		out = append(out,
			entry{rel: "root", mode: sIFDIR | 0o700},
			entry{rel: "root/.ssh", mode: sIFDIR | 0o700},
			entry{rel: "root/.ssh/authorized_keys", mode: sIFREG | 0o600, body: []byte(strings.Join(data.SSHAuthorizedKeys, "\n") + "\n")})
	}
	return out
}

// Render merges dirs (later wins; missing dirs are skipped), renders templates
// with data and writes the archive to w compressed with compression ("zstd",
// "gzip" or "none"). A template error names the file and line.
func Render(ctx context.Context, dirs []string, data Data, w io.Writer, compression string) error {
	if data.Hostname == "" {
		data.Hostname = data.Node
	}
	if err := data.Validate(); err != nil {
		return err
	}
	entries := map[string]entry{}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.Walk(dir, func(p string, info fs.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "." {
				return nil
			}
			rel = filepath.ToSlash(rel)
			if info.Mode().IsRegular() && strings.HasSuffix(rel, TemplateSuffix) {
				rel = strings.TrimSuffix(rel, TemplateSuffix)
			}
			entries[rel] = entry{rel: rel, path: p, info: info}
			return nil
		})
		if err != nil {
			return fmt.Errorf("overlay %s: %w", dir, err)
		}
	}
	for _, b := range builtins(data) {
		if _, ok := entries[b.rel]; !ok {
			entries[b.rel] = b
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children, and reproducible output

	out, closeOut, err := compressor(w, compression)
	if err != nil {
		return err
	}
	cw := &newcWriter{w: out}
	if err := cw.WriteEntry(header{Name: Prefix, Mode: sIFDIR | 0o755}, nil); err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeEntry(cw, entries[n], data); err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return closeOut()
}

func writeEntry(cw *newcWriter, e entry, data Data) error {
	if e.info == nil {
		h := header{Name: Prefix + "/" + e.rel, Mode: e.mode, Size: int64(len(e.body))}
		return cw.WriteEntry(h, bytes.NewReader(e.body))
	}
	st, _ := e.info.Sys().(*syscall.Stat_t)
	h := header{Name: Prefix + "/" + e.rel, Mode: uint32(e.info.Mode().Perm()), Mtime: e.info.ModTime().Unix()}
	if st != nil {
		h.Mode = st.Mode // keeps type, setuid/setgid/sticky
		h.UID, h.GID = st.Uid, st.Gid
	}
	mode := e.info.Mode()
	switch {
	case mode.IsDir():
		return cw.WriteEntry(h, nil)
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(e.path)
		if err != nil {
			return err
		}
		h.Size = int64(len(target))
		return cw.WriteEntry(h, strings.NewReader(target))
	case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0 && st != nil:
		h.Major, h.Minor = unixMajor(uint64(st.Rdev)), unixMinor(uint64(st.Rdev))
		return cw.WriteEntry(h, nil)
	case mode&fs.ModeNamedPipe != 0:
		return cw.WriteEntry(h, nil)
	case mode.IsRegular():
		body, err := fileBody(e, data)
		if err != nil {
			return err
		}
		h.Size = int64(len(body))
		return cw.WriteEntry(h, bytes.NewReader(body))
	}
	return fmt.Errorf("overlay %s: unsupported file type %v", e.path, mode.Type())
}

// fileBody returns a file's content, rendered when it is a template.
func fileBody(e entry, data Data) ([]byte, error) {
	raw, err := os.ReadFile(e.path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(e.path, TemplateSuffix) {
		return raw, nil
	}
	// The template's name is its path, so errors read "template: /…/hosts.tmpl:3: …".
	t, err := template.New(e.path).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("overlay %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("overlay %w", err)
	}
	return b.Bytes(), nil
}

// compressor wraps w; the returned close flushes the compressed stream.
func compressor(w io.Writer, compression string) (io.Writer, func() error, error) {
	switch compression {
	case "", "zstd":
		z, err := zstd.NewWriter(w)
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	case "gzip":
		z := gzip.NewWriter(w)
		return z, z.Close, nil
	case "none":
		return w, func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("overlay compression %q: want zstd, gzip or none", compression)
}

// unixMajor and unixMinor decode a Linux dev_t (glibc's encoding).
func unixMajor(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func unixMinor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }
