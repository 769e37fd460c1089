package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// cloudInitFiles keeps cloud-init records under <state>/cloud-init/: one
// YAML file per record, public/{group,node}/NAME.yaml and, 0600 in a 0700
// tree, secure/{group,node}/NAME.yaml; instance-ids in instance-ids.yaml.
// Every read goes to the files, so the boot service sees the CLI's writes
// at once.
type cloudInitFiles struct{ dir string }

func (c cloudInitFiles) path(k cloudinit.Key) string {
	part := "public"
	if k.Secure {
		part = "secure"
	}
	return filepath.Join(c.dir, part, string(k.Scope), k.Name+".yaml")
}

// CloudInit implements store.Store.
func (s *Store) CloudInit(ctx context.Context, k cloudinit.Key) (cloudinit.Data, error) {
	if err := ctx.Err(); err != nil {
		return cloudinit.Data{}, err
	}
	if err := k.Validate(); err != nil {
		return cloudinit.Data{}, err
	}
	path := s.ci.path(k)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cloudinit.Data{}, nil
	}
	if err != nil {
		return cloudinit.Data{}, fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	var d cloudinit.Data
	if err := yaml.Unmarshal(b, &d); err != nil {
		return cloudinit.Data{}, fmt.Errorf("cloud-init %s: %w", path, err)
	}
	return d, nil
}

// PutCloudInit implements store.Store.
func (s *Store) PutCloudInit(ctx context.Context, k cloudinit.Key, d cloudinit.Data) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckCloudInit(k, d); err != nil {
		return err
	}
	b, err := yaml.Marshal(d)
	if err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	path := s.ci.path(k)
	dirMode, mode := os.FileMode(0o755), os.FileMode(0o644)
	if k.Secure {
		dirMode, mode = 0o700, 0o600
		if err := os.MkdirAll(filepath.Join(s.ci.dir, "secure"), 0o700); err != nil {
			return fmt.Errorf("cloud-init of %s: %w", k, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	if err := atomicfile.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	return nil
}

// DeleteCloudInit implements store.Store.
func (s *Store) DeleteCloudInit(ctx context.Context, k cloudinit.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	err := os.Remove(s.ci.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cloud-init of %s: %w", k, store.ErrNotFound)
	}
	return err
}

// CloudInitKeys implements store.Store.
func (s *Store) CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []cloudinit.Key
	for _, secure := range []bool{false, true} {
		for _, scope := range []cloudinit.Scope{cloudinit.Group, cloudinit.Node} {
			dir := filepath.Dir(s.ci.path(cloudinit.Key{Scope: scope, Name: "x", Secure: secure}))
			ents, err := os.ReadDir(dir)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("cloud-init records: %w", err)
			}
			for _, e := range ents {
				name, ok := strings.CutSuffix(e.Name(), ".yaml")
				k := cloudinit.Key{Scope: scope, Name: name, Secure: secure}
				if ok && e.Type().IsRegular() && k.Validate() == nil {
					keys = append(keys, k)
				}
			}
		}
	}
	store.SortKeys(keys)
	return keys, nil
}

// InstanceID implements store.Store: a read-modify-write of
// instance-ids.yaml under a lock, since the CLI (previews) and the boot
// service may both mint.
func (s *Store) InstanceID(ctx context.Context, node, image string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var id string
	err := s.ci.withIDs(func(ids map[string]store.InstanceID) bool {
		if cur, ok := ids[node]; ok && cur.Image == image {
			id = cur.ID
			return false
		}
		id = cloudinit.NewInstanceID()
		ids[node] = store.InstanceID{Image: image, ID: id}
		return true
	})
	return id, err
}

// withIDs runs fn on the instance-ids under the lock and writes them back
// when fn says it changed them.
func (c cloudInitFiles) withIDs(fn func(map[string]store.InstanceID) bool) error {
	path := filepath.Join(c.dir, "instance-ids.yaml")
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("instance-ids: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("instance-ids: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("instance-ids: lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	ids := map[string]store.InstanceID{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("instance-ids: %w", err)
	}
	if err := yaml.Unmarshal(b, &ids); err != nil {
		return fmt.Errorf("instance-ids %s: %w", path, err)
	}
	if ids == nil {
		ids = map[string]store.InstanceID{}
	}
	if !fn(ids) {
		return nil
	}
	out, err := yaml.Marshal(ids)
	if err == nil {
		err = atomicfile.WriteFile(path, out, 0o644)
	}
	if err != nil {
		return fmt.Errorf("instance-ids: %w", err)
	}
	return nil
}

// exportCloudInit fills d's cloud-init records and instance-ids.
func (s *Store) exportCloudInit(ctx context.Context, d *store.Dump) error {
	recs, err := store.ExportCloudInit(ctx, s)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	d.CloudInit = recs
	return s.ci.withIDs(func(ids map[string]store.InstanceID) bool {
		if len(ids) > 0 {
			d.InstanceIDs = ids
		}
		return false
	})
}

// importCloudInit writes d's records and instance-ids.
func (s *Store) importCloudInit(ctx context.Context, d *store.Dump) error {
	if len(d.InstanceIDs) == 0 && len(d.CloudInit) == 0 {
		return nil
	}
	return store.ImportCloudInit(ctx, d, s.PutCloudInit, func(node string, id store.InstanceID) error {
		return s.ci.withIDs(func(ids map[string]store.InstanceID) bool { ids[node] = id; return true })
	})
}
