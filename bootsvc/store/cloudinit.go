package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
)

// Cloud-init data in a store: one record per group or node and part
// (public, secure), validated on write (cloudinit.Data.Validate). CloudInit
// returns the zero Data for a record that is not there; DeleteCloudInit
// returns ErrNotFound. Secure parts never appear in the inventory nor in
// anything the CLI lists: the file backend keeps them in 0600 files of
// their own, PostgreSQL in a table of their own.
//
// InstanceID keeps one instance-id per node with the image it was minted
// for: the same while the image stays, a new one when it changes, so that
// cloud-init runs its once-per-instance modules again on a new image.

// CloudInitRecord is one record in a Dump.
type CloudInitRecord struct {
	cloudinit.Key `yaml:",inline"`
	Data          cloudinit.Data `yaml:"data"`
}

// InstanceID is a node's instance-id and the image it belongs to.
type InstanceID struct {
	Image string `yaml:"image" json:"image"`
	ID    string `yaml:"id" json:"id"`
}

// CheckCloudInit validates a record before a backend stores it.
func CheckCloudInit(k cloudinit.Key, d cloudinit.Data) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	return nil
}

// SortKeys orders record keys: groups before nodes, by name, public first.
func SortKeys(keys []cloudinit.Key) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Scope != b.Scope {
			return a.Scope == cloudinit.Group
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return !a.Secure && b.Secure
	})
}

// ExportCloudInit reads every record of s, for a Dump.
func ExportCloudInit(ctx context.Context, s interface {
	CloudInit(ctx context.Context, k cloudinit.Key) (cloudinit.Data, error)
	CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error)
}) ([]CloudInitRecord, error) {
	keys, err := s.CloudInitKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []CloudInitRecord
	for _, k := range keys {
		d, err := s.CloudInit(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, CloudInitRecord{Key: k, Data: d})
	}
	return out, nil
}

// ImportCloudInit writes a Dump's records and instance-ids through put and
// putID.
func ImportCloudInit(ctx context.Context, d *Dump, put func(context.Context, cloudinit.Key, cloudinit.Data) error, putID func(node string, id InstanceID) error) error {
	var errs []error
	for _, r := range d.CloudInit {
		if err := put(ctx, r.Key, r.Data); err != nil {
			errs = append(errs, fmt.Errorf("import: %w", err))
		}
	}
	for node, id := range d.InstanceIDs {
		if err := putID(node, id); err != nil {
			errs = append(errs, fmt.Errorf("import: instance-id of %s: %w", node, err))
		}
	}
	return errors.Join(errs...)
}
