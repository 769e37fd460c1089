package recipe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Canonical is the recipe's content in a stable form (JSON with sorted map
// keys, without its location), the recipe's part of the cache key.
func (r *Recipe) Canonical() ([]byte, error) {
	c := *r
	c.Path, c.ParentRecipe, c.lines = "", nil, nil
	if c.ParentIsRecipe() {
		// The parent's identity enters the key as its image ID, not its path.
		c.Parent = "recipe"
	}
	return json.Marshal(c) // encoding/json sorts map keys
}

// CacheKey is sha256(parent image ID, canonical recipe, content of every file
// the recipe copies, extra inputs). extra carries inputs the builder adds to the
// layer (e.g. the dracut module); each is hashed by name and content.
func (r *Recipe) CacheKey(parentID string, extra map[string][]byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "imgctl-layer-v1\nparent %s\n", parentID)
	canon, err := r.Canonical()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "recipe %d\n", len(canon))
	h.Write(canon)
	for i, f := range r.Files {
		if err := hashTree(h, fmt.Sprintf("files[%d]", i), r.resolve(f.Src)); err != nil {
			return "", r.errorf(fmt.Sprintf("files[%d].src", i), "hash %s: %v", f.Src, err)
		}
	}
	for _, repo := range r.Repos {
		if repo.Key != "" {
			if err := hashTree(h, "key "+repo.Name, r.resolve(repo.Key)); err != nil {
				return "", err
			}
		}
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "extra %s %d\n", n, len(extra[n]))
		h.Write(extra[n])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree writes the relative path, type, mode and content of every entry
// under root (or of root itself when it is a file) to h, in lexical order.
func hashTree(h io.Writer, label, root string) error {
	fmt.Fprintf(h, "tree %s\n", label)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %o\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %s\n", t)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "size %d\n", info.Size())
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
}
