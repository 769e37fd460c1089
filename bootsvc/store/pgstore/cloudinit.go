package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// Cloud-init records are read from the database on every request (a node
// fetches a handful of files per boot), not cached with the inventory.

func ciTable(k cloudinit.Key) string {
	if k.Secure {
		return "cloud_init_secure"
	}
	return "cloud_init"
}

// CloudInit implements store.Store.
func (s *Store) CloudInit(ctx context.Context, k cloudinit.Key) (cloudinit.Data, error) {
	if err := k.Validate(); err != nil {
		return cloudinit.Data{}, err
	}
	var doc string
	err := s.pool.QueryRow(ctx, `SELECT doc FROM `+ciTable(k)+` WHERE scope = $1 AND name = $2`, string(k.Scope), k.Name).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return cloudinit.Data{}, nil
	}
	if err != nil {
		return cloudinit.Data{}, fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	var d cloudinit.Data
	if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
		return cloudinit.Data{}, fmt.Errorf("cloud-init of %s in the database: %w", k, err)
	}
	return d, nil
}

// PutCloudInit implements store.Store.
func (s *Store) PutCloudInit(ctx context.Context, k cloudinit.Key, d cloudinit.Data) error {
	if err := store.CheckCloudInit(k, d); err != nil {
		return err
	}
	b := &pgx.Batch{}
	if err := queueCloudInit(b, k, d); err != nil {
		return err
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	return nil
}

func queueCloudInit(b *pgx.Batch, k cloudinit.Key, d cloudinit.Data) error {
	doc, err := yaml.Marshal(d)
	if err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	b.Queue(`INSERT INTO `+ciTable(k)+` (scope, name, doc) VALUES ($1, $2, $3)
		ON CONFLICT (scope, name) DO UPDATE SET doc = EXCLUDED.doc`, string(k.Scope), k.Name, string(doc))
	return nil
}

// DeleteCloudInit implements store.Store.
func (s *Store) DeleteCloudInit(ctx context.Context, k cloudinit.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+ciTable(k)+` WHERE scope = $1 AND name = $2`, string(k.Scope), k.Name)
	if err != nil {
		return fmt.Errorf("cloud-init of %s: %w", k, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("cloud-init of %s: %w", k, store.ErrNotFound)
	}
	return nil
}

// CloudInitKeys implements store.Store.
func (s *Store) CloudInitKeys(ctx context.Context) ([]cloudinit.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT scope, name, false FROM cloud_init UNION ALL SELECT scope, name, true FROM cloud_init_secure`)
	if err != nil {
		return nil, fmt.Errorf("cloud-init records: %w", err)
	}
	defer rows.Close()
	var keys []cloudinit.Key
	for rows.Next() {
		var k cloudinit.Key
		var scope string
		if err := rows.Scan(&scope, &k.Name, &k.Secure); err != nil {
			return nil, fmt.Errorf("cloud-init records: %w", err)
		}
		k.Scope = cloudinit.Scope(scope)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cloud-init records: %w", err)
	}
	store.SortKeys(keys)
	return keys, nil
}

// InstanceID implements store.Store. The upsert changes the row only for
// another image, so concurrent callers (several boot servers) agree on one id.
func (s *Store) InstanceID(ctx context.Context, node, image string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `INSERT INTO cloud_init_instances (node, image, id) VALUES ($1, $2, $3)
		ON CONFLICT (node) DO UPDATE SET image = EXCLUDED.image, id = EXCLUDED.id
		WHERE cloud_init_instances.image <> EXCLUDED.image
		RETURNING id`, node, image, cloudinit.NewInstanceID()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) { // same image: the row stays
		err = s.pool.QueryRow(ctx, `SELECT id FROM cloud_init_instances WHERE node = $1`, node).Scan(&id)
	}
	if err != nil {
		return "", fmt.Errorf("instance-id of %s: %w", node, err)
	}
	return id, nil
}

// exportCloudInit fills d's cloud-init records and instance-ids.
func (s *Store) exportCloudInit(ctx context.Context, d *store.Dump) error {
	recs, err := store.ExportCloudInit(ctx, s)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	d.CloudInit = recs
	rows, err := s.pool.Query(ctx, `SELECT node, image, id FROM cloud_init_instances`)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var node string
		var id store.InstanceID
		if err := rows.Scan(&node, &id.Image, &id.ID); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if d.InstanceIDs == nil {
			d.InstanceIDs = map[string]store.InstanceID{}
		}
		d.InstanceIDs[node] = id
	}
	return rows.Err()
}

// queueImportCloudInit adds d's records and instance-ids to an import's batch.
func queueImportCloudInit(b *pgx.Batch, d *store.Dump) error {
	for _, r := range d.CloudInit {
		if err := store.CheckCloudInit(r.Key, r.Data); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if err := queueCloudInit(b, r.Key, r.Data); err != nil {
			return err
		}
	}
	for node, id := range d.InstanceIDs {
		b.Queue(`INSERT INTO cloud_init_instances (node, image, id) VALUES ($1, $2, $3)
			ON CONFLICT (node) DO UPDATE SET image = EXCLUDED.image, id = EXCLUDED.id`, node, id.Image, id.ID)
	}
	return nil
}
