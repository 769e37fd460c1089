package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/imgctl/imgctl/internal/atomicfile"
)

// ErrNotFound is returned when no artifact set matches a lookup.
var ErrNotFound = errors.New("artifacts not found")

// currentLink names the symlink in <artifacts>/<name>/ that points at the
// digest directory of the newest set for that image.
const currentLink = "current"

// Store is the artifact store under a state directory. It holds no open
// resources; it is safe for concurrent use by readers. Writers stage into a
// temporary directory and Install it, so readers never see partial sets.
type Store struct {
	root string // <state>/artifacts
}

// Entry is one stored artifact set.
type Entry struct {
	Dir      string    `json:"dir"`
	Current  bool      `json:"current"` // the set "current" points at for its name
	Manifest *Manifest `json:"manifest"`
}

// NewStore returns the store under stateDir.
func NewStore(stateDir string) *Store {
	return &Store{root: filepath.Join(stateDir, "artifacts")}
}

// Root is the directory that holds all sets.
func (s *Store) Root() string { return s.root }

// Dir is the directory of the set for image name and digest.
func (s *Store) Dir(name, digest string) string {
	return filepath.Join(s.root, name, DigestHex(digest))
}

// Stage creates an empty staging directory for name/digest. Write the
// artifacts and the manifest into it, then call Install. On failure remove it.
func (s *Store) Stage(name, digest string) (string, error) {
	dir, err := atomicfile.TempDir(s.Dir(name, digest))
	if err == nil {
		err = os.Chmod(dir, 0o755) // MkdirTemp makes 0700; servers and peers read sets
	}
	return dir, err
}

// Install moves a staged directory into place and makes it current for its
// name. The staged directory must contain a valid manifest.
func (s *Store) Install(staged string) (*Entry, error) {
	m, err := ReadManifest(filepath.Join(staged, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("install artifacts: %w", err)
	}
	final := s.Dir(m.Name, m.ImageDigest)
	if _, err := os.Stat(final); err == nil {
		// Same digest already stored: content-addressed, so keep the old one.
		os.RemoveAll(staged)
	} else if err := atomicfile.CommitDir(staged, final); err != nil {
		return nil, err
	}
	if err := s.SetCurrent(m.Name, m.ImageDigest); err != nil {
		return nil, err
	}
	return &Entry{Dir: final, Current: true, Manifest: m}, nil
}

// SetCurrent points name's "current" link at digest (atomic symlink swap).
func (s *Store) SetCurrent(name, digest string) error {
	dir := filepath.Join(s.root, name)
	tmp := filepath.Join(dir, "."+currentLink+".tmp")
	os.Remove(tmp)
	if err := os.Symlink(DigestHex(digest), tmp); err != nil {
		return fmt.Errorf("set current %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, currentLink)); err != nil {
		return fmt.Errorf("set current %s: %w", name, err)
	}
	return nil
}

// Get returns the set for name and digest.
func (s *Store) Get(name, digest string) (*Entry, error) {
	dir := s.Dir(name, digest)
	m, err := ReadManifest(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s@%s: %w", name, digest, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	cur, _ := os.Readlink(filepath.Join(s.root, name, currentLink))
	return &Entry{Dir: dir, Current: cur == DigestHex(digest), Manifest: m}, nil
}

// Current returns the current set for an image name.
func (s *Store) Current(name string) (*Entry, error) {
	cur, err := os.Readlink(filepath.Join(s.root, name, currentLink))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return s.Get(name, cur)
}

// List returns every complete set, sorted by name then creation time. Staging
// directories and sets without a valid manifest are skipped.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	names, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, n := range names {
		if !n.IsDir() || n.Name()[0] == '.' {
			continue
		}
		digests, err := os.ReadDir(filepath.Join(s.root, n.Name()))
		if err != nil {
			return nil, err
		}
		for _, d := range digests {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if !d.IsDir() || d.Name()[0] == '.' {
				continue
			}
			e, err := s.Get(n.Name(), d.Name())
			if err != nil {
				continue
			}
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Manifest.Name != out[j].Manifest.Name {
			return out[i].Manifest.Name < out[j].Manifest.Name
		}
		return out[i].Manifest.Created.Before(out[j].Manifest.Created)
	})
	return out, nil
}

// Remove deletes a set; when it was current, the link is removed too.
func (s *Store) Remove(name, digest string) error {
	e, err := s.Get(name, digest)
	if err != nil {
		return err
	}
	if e.Current {
		os.Remove(filepath.Join(s.root, name, currentLink))
	}
	return os.RemoveAll(e.Dir)
}

// Open opens one artifact of a set for reading, with its size and sha256 from
// the manifest. The caller closes the file. The content is not re-hashed here;
// Verify does that (servers verify once at startup and on change).
func (e *Entry) Open(kind string) (*os.File, Artifact, error) {
	a, ok := e.Manifest.Artifacts[kind]
	if !ok {
		return nil, a, fmt.Errorf("%s: no %s artifact: %w", e.Manifest.Name, kind, ErrNotFound)
	}
	f, err := os.Open(filepath.Join(e.Dir, a.File))
	if err != nil {
		return nil, a, fmt.Errorf("open artifact %s/%s: %w", e.Manifest.Name, kind, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, a, err
	}
	if st.Size() != a.Size {
		f.Close()
		return nil, a, fmt.Errorf("artifact %s/%s: size %d, manifest says %d", e.Manifest.Name, kind, st.Size(), a.Size)
	}
	return f, a, nil
}

// VerifyError names the artifact that failed verification.
type VerifyError struct {
	Kind, File string
	Err        error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("%s (%s): %v", e.Kind, e.File, e.Err) }
func (e *VerifyError) Unwrap() error { return e.Err }

// Verify re-hashes every artifact of the set and each root piece and returns
// one error per mismatch (joined), or nil.
func (e *Entry) Verify(ctx context.Context) error {
	var errs []error
	kinds := make([]string, 0, len(e.Manifest.Artifacts))
	for k := range e.Manifest.Artifacts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		a := e.Manifest.Artifacts[k]
		f, _, err := e.Open(k)
		if err != nil {
			errs = append(errs, &VerifyError{k, a.File, err})
			continue
		}
		var s Sums
		if k == RootFS {
			s.Pieces, s.SHA256, err = HashPieces(ctx, f, e.Manifest.Root.PieceSize)
		} else {
			s.SHA256, err = hashReader(ctx, f)
		}
		f.Close()
		if err != nil {
			errs = append(errs, &VerifyError{k, a.File, err})
		} else if err := e.Manifest.Check(k, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sums is what hashing one artifact file gave: its sha256 and, for the root
// image, the sha256 of each piece.
type Sums struct {
	SHA256 string
	Pieces []string
}

// Check compares the sums of kind's file with the manifest. It lets a copy
// hashed while it was written (pull) be verified without reading it again.
func (m *Manifest) Check(kind string, s Sums) error {
	a, ok := m.Artifacts[kind]
	switch {
	case !ok:
		return fmt.Errorf("manifest has no %s artifact", kind)
	case s.SHA256 != a.SHA256:
		return &VerifyError{kind, a.File, fmt.Errorf("sha256 %s, manifest says %s", s.SHA256, a.SHA256)}
	case kind == RootFS && !equalStrings(s.Pieces, m.Root.Pieces):
		return &VerifyError{kind, a.File, fmt.Errorf("piece hashes differ from the manifest")}
	}
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hashReader returns the hex sha256 of r, checking ctx between blocks.
func hashReader(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
