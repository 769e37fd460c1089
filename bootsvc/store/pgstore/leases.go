package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgctl/imgctl/bootsvc/hostkeys"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// Lease implements store.Store. The allocation runs in the database under
// one advisory lock, so boot servers sharing the database never hand out an
// address twice; the unique index on leases.ip holds them to it as well.
func (s *Store) Lease(ctx context.Context, req store.LeaseRequest) (netip.Addr, error) {
	var got netip.Addr
	mac := req.MAC.String()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, leaseLock); err != nil {
			return err
		}
		var cur string
		err := tx.QueryRow(ctx, `SELECT ip FROM leases WHERE mac = $1`, mac).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		expires := time.Now().Add(req.TTL)
		if a, perr := netip.ParseAddr(cur); err == nil && perr == nil && !a.Less(req.First) && !req.Last.Less(a) {
			_, err := tx.Exec(ctx, `UPDATE leases SET expires = $2 WHERE mac = $1`, mac, expires)
			got = a
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM leases WHERE expires < now()`); err != nil {
			return err
		}
		taken := map[netip.Addr]bool{}
		rows, err := tx.Query(ctx, `SELECT ip FROM leases UNION SELECT ip FROM nodes WHERE ip IS NOT NULL`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var ip string
			if err := rows.Scan(&ip); err != nil {
				return err
			}
			if a, err := netip.ParseAddr(ip); err == nil {
				taken[a] = true
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for a := req.First; a.IsValid() && !req.Last.Less(a); a = a.Next() {
			if taken[a] {
				continue
			}
			_, err := tx.Exec(ctx, `INSERT INTO leases (mac, ip, expires) VALUES ($1, $2, $3)
				ON CONFLICT (mac) DO UPDATE SET ip = EXCLUDED.ip, expires = EXCLUDED.expires`, mac, a.String(), expires)
			got = a
			return err
		}
		return store.ErrPoolExhausted
	})
	if err != nil {
		return netip.Addr{}, err
	}
	return got, nil
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, mac net.HardwareAddr) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE mac = $1`, mac.String())
	return err
}

// HostKey implements store.Store. Two servers creating a node's first key
// at once agree on one: the first insert wins and both return it.
func (s *Store) HostKey(ctx context.Context, node string) (hostkeys.Key, error) {
	k, err := s.hostKey(ctx, node)
	if !errors.Is(err, store.ErrNotFound) {
		return k, err
	}
	if k, err = hostkeys.Generate(node); err != nil {
		return hostkeys.Key{}, err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO host_keys (node, type, private, public) VALUES ($1, $2, $3, $4) ON CONFLICT (node) DO NOTHING`,
		node, k.Type, string(k.Private), string(k.Public)); err != nil {
		return hostkeys.Key{}, fmt.Errorf("host key of %s: %w", node, err)
	}
	return s.hostKey(ctx, node)
}

func (s *Store) hostKey(ctx context.Context, node string) (hostkeys.Key, error) {
	var typ, priv, pub string
	err := s.pool.QueryRow(ctx, `SELECT type, private, public FROM host_keys WHERE node = $1`, node).Scan(&typ, &priv, &pub)
	if errors.Is(err, pgx.ErrNoRows) {
		return hostkeys.Key{}, fmt.Errorf("host key of %s: %w", node, store.ErrNotFound)
	}
	if err != nil {
		return hostkeys.Key{}, fmt.Errorf("host key of %s: %w", node, err)
	}
	return hostkeys.Key{Type: typ, Private: []byte(priv), Public: []byte(pub)}, nil
}

// PublicHostKey implements store.Store.
func (s *Store) PublicHostKey(ctx context.Context, node string) ([]byte, error) {
	k, err := s.hostKey(ctx, node)
	return k.Public, err
}

// Export implements store.Store.
func (s *Store) Export(ctx context.Context) (*store.Dump, error) {
	inv, _, err := loadInventory(ctx, s.pool)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	states, err := s.States(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	d := &store.Dump{Version: store.DumpVersion, Inventory: inv.File(), States: states, HostKeys: map[string]store.HostKey{}}
	rows, err := s.pool.Query(ctx, `SELECT node, type, private, public FROM host_keys`)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var node string
		var k store.HostKey
		if err := rows.Scan(&node, &k.Type, &k.Private, &k.Public); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		d.HostKeys[node] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := s.exportCloudInit(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Import implements store.Store: in one transaction the dump's inventory
// replaces the database's, its states and keys replace those of the same
// nodes.
func (s *Store) Import(ctx context.Context, d *store.Dump) error {
	if err := store.CheckDump(d); err != nil {
		return err
	}
	next, err := inventory.FromFile(d.Inventory)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	var v int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, inventoryLock); err != nil {
			return err
		}
		cur, err := loadFile(ctx, tx)
		if err != nil {
			return err
		}
		if v, err = writeDiff(ctx, tx, cur, next.File()); err != nil {
			return err
		}
		if err := putStates(ctx, tx, d.States); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for node, k := range d.HostKeys {
			b.Queue(`INSERT INTO host_keys (node, type, private, public) VALUES ($1, $2, $3, $4)
				ON CONFLICT (node) DO UPDATE SET type = EXCLUDED.type, private = EXCLUDED.private, public = EXCLUDED.public`,
				node, k.Type, k.Private, k.Public)
		}
		if err := queueImportCloudInit(b, d); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	s.setCache(next, v)
	s.Notify(store.Change{Kind: store.Resync})
	return nil
}
