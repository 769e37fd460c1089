package store

import (
	"context"
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
)

// memoryCloudInit is Memory's cloud-init data, guarded by Memory.mu.
type memoryCloudInit struct {
	records map[cloudinit.Key]cloudinit.Data
	ids     map[string]InstanceID
}

func (c *memoryCloudInit) init() {
	if c.records == nil {
		c.records = map[cloudinit.Key]cloudinit.Data{}
		c.ids = map[string]InstanceID{}
	}
}

func (c *memoryCloudInit) export(d *Dump) {
	keys := make([]cloudinit.Key, 0, len(c.records))
	for k := range c.records {
		keys = append(keys, k)
	}
	SortKeys(keys)
	for _, k := range keys {
		d.CloudInit = append(d.CloudInit, CloudInitRecord{Key: k, Data: c.records[k]})
	}
	if len(c.ids) > 0 {
		d.InstanceIDs = map[string]InstanceID{}
		for n, id := range c.ids {
			d.InstanceIDs[n] = id
		}
	}
}

func (c *memoryCloudInit) importDump(d *Dump) {
	c.init()
	for _, r := range d.CloudInit {
		c.records[r.Key] = r.Data
	}
	for n, id := range d.InstanceIDs {
		c.ids[n] = id
	}
}

// CloudInit implements Store.
func (m *Memory) CloudInit(ctx context.Context, k cloudinit.Key) (cloudinit.Data, error) {
	if err := ctx.Err(); err != nil {
		return cloudinit.Data{}, err
	}
	if err := k.Validate(); err != nil {
		return cloudinit.Data{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ci.records[k], nil
}

// PutCloudInit implements Store.
func (m *Memory) PutCloudInit(ctx context.Context, k cloudinit.Key, d cloudinit.Data) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckCloudInit(k, d); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ci.init()
	m.ci.records[k] = d
	return nil
}

// DeleteCloudInit implements Store.
func (m *Memory) DeleteCloudInit(ctx context.Context, k cloudinit.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ci.records[k]; !ok {
		return fmt.Errorf("cloud-init of %s: %w", k, ErrNotFound)
	}
	delete(m.ci.records, k)
	return nil
}

// CloudInitKeys implements Store.
func (m *Memory) CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]cloudinit.Key, 0, len(m.ci.records))
	for k := range m.ci.records {
		keys = append(keys, k)
	}
	SortKeys(keys)
	return keys, nil
}

// InstanceID implements Store.
func (m *Memory) InstanceID(ctx context.Context, node, image string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ci.init()
	if id, ok := m.ci.ids[node]; ok && id.Image == image {
		return id.ID, nil
	}
	id := InstanceID{Image: image, ID: cloudinit.NewInstanceID()}
	m.ci.ids[node] = id
	return id.ID, nil
}
