package pgstore

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// loadFile reads the inventory rows into the on-disk form.
func loadFile(ctx context.Context, q querier) (inventory.File, error) {
	groups, err := loadDocs[inventory.Group](ctx, q, "groups")
	if err != nil {
		return inventory.File{}, err
	}
	nodes, err := loadDocs[inventory.Node](ctx, q, "nodes")
	return inventory.File{Groups: groups, Nodes: nodes}, err
}

// loadDocs decodes every row of table (name, YAML doc) into a T.
func loadDocs[T any](ctx context.Context, q querier, table string) (map[string]*T, error) {
	rows, err := q.Query(ctx, `SELECT name, doc FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*T{}
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&name, &doc); err != nil {
			return nil, err
		}
		v := new(T)
		if err := yaml.Unmarshal([]byte(doc), v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", table, name, err)
		}
		out[name] = v
	}
	return out, rows.Err()
}

func (s *Store) cached() *inventory.Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inv
}

// Snapshot implements store.Store, from the cache.
func (s *Store) Snapshot(ctx context.Context) (*inventory.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.cached(), nil
}

// Node implements store.Store, from the cache.
func (s *Store) Node(ctx context.Context, name string) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.cached().Node(name))("node %s", name)
}

// NodeByMAC implements store.Store, from the cache.
func (s *Store) NodeByMAC(ctx context.Context, mac net.HardwareAddr) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.cached().NodeByMAC(mac))("node with MAC %s", mac)
}

// NodeByIP implements store.Store, from the cache.
func (s *Store) NodeByIP(ctx context.Context, ip netip.Addr) (inventory.Node, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Node{}, err
	}
	return store.Found(s.cached().NodeByIP(ip))("node with address %s", ip)
}

// Update implements store.Store: in one transaction under an advisory lock
// it reads the inventory afresh, applies fn, validates, writes the rows that
// changed and notifies every server.
func (s *Store) Update(ctx context.Context, fn func(*inventory.Inventory) error) error {
	var next *inventory.Inventory
	var v int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, inventoryLock); err != nil {
			return err
		}
		cur, _, err := loadInventory(ctx, tx)
		if err != nil {
			return err
		}
		if next, err = store.EditCopy(cur, fn); err != nil {
			return err
		}
		v, err = writeDiff(ctx, tx, cur.File(), next.File())
		return err
	})
	if err != nil {
		return err
	}
	s.setCache(next, v)
	s.Notify(store.Change{Kind: store.InventoryChanged})
	return nil
}

// writeDiff writes the groups and nodes that differ between old and new,
// bumps the inventory version (returned) and queues the notification (sent
// on commit).
func writeDiff(ctx context.Context, tx pgx.Tx, old, new inventory.File) (int64, error) {
	var v int64
	if err := tx.QueryRow(ctx, `UPDATE inventory_version SET v = v + 1 RETURNING v`).Scan(&v); err != nil {
		return 0, err
	}
	b := &pgx.Batch{}
	for name := range old.Groups {
		if _, ok := new.Groups[name]; !ok {
			b.Queue(`DELETE FROM groups WHERE name = $1`, name)
		}
	}
	for name, g := range new.Groups {
		doc, err := yaml.Marshal(g)
		if err != nil {
			return 0, err
		}
		if o, ok := old.Groups[name]; ok {
			if od, _ := yaml.Marshal(o); string(od) == string(doc) {
				continue
			}
		}
		b.Queue(`INSERT INTO groups (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc`, name, string(doc))
	}
	// Deletions and address changes first, so that an address moving from
	// one node to another never meets the unique index twice.
	for name := range old.Nodes {
		if _, ok := new.Nodes[name]; !ok {
			b.Queue(`DELETE FROM nodes WHERE name = $1`, name)
		}
	}
	var upserts [][]any
	for name, n := range new.Nodes {
		doc, err := yaml.Marshal(n)
		if err != nil {
			return 0, err
		}
		if o, ok := old.Nodes[name]; ok {
			if od, _ := yaml.Marshal(o); string(od) == string(doc) {
				continue
			}
			b.Queue(`UPDATE nodes SET ip = NULL WHERE name = $1`, name)
		}
		var ip any
		if n.IP != "" {
			ip = n.IP
		}
		upserts = append(upserts, []any{name, ip, string(doc)})
	}
	for _, u := range upserts {
		b.Queue(`INSERT INTO nodes (name, ip, doc) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET ip = EXCLUDED.ip, doc = EXCLUDED.doc`, u...)
	}
	b.Queue(`SELECT pg_notify($1, '')`, chanInventory)
	return v, tx.SendBatch(ctx, b).Close()
}
