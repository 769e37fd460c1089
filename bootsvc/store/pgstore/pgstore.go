// Package pgstore is the PostgreSQL backend of the boot-service store, for
// sites with several boot servers on one database. The schema is embedded
// and migrated on Open (a newer schema is refused). Every server keeps the
// inventory in memory, refreshed by LISTEN/NOTIFY when any server changes
// it, so DHCP and HTTP lookups cost no query and keep being answered while
// the database is away; boot-state writes that fail then are queued and
// retried in order until it is back.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/internal/logging"
)

// Notification channels.
const (
	chanInventory = "imgctl_inventory"
	chanState     = "imgctl_state"
)

// Options say which database to use.
type Options struct {
	URL string       // postgres://… or postgresql://…
	Log *slog.Logger // nil: discard
}

// Store is the PostgreSQL backend. Open it, Close it.
type Store struct {
	store.Notifier
	url  string // masked, for messages
	pool *pgxpool.Pool
	log  *slog.Logger

	mu         sync.Mutex
	inv        *inventory.Inventory // the cache lookups are answered from
	invVersion int64                // inventory_version it was read at

	stale chan struct{} // the inventory changed elsewhere: reread it (coalescing)

	writes    chan pendingReport // boot states to write behind, in order
	wmu       sync.Mutex
	wcond     *sync.Cond
	queued    uint64 // sequence of the last report queued
	written   uint64 // sequence of the last report in the database
	unwritten atomic.Int64
	cancel    context.CancelFunc
	running   sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// IsURL reports whether s names a PostgreSQL store.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// MaskURL is u with its password replaced, for messages and logs.
func MaskURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		// Not a URL url.Parse takes: mask whatever stands between the
		// scheme's user and the @.
		scheme, rest, ok := strings.Cut(u, "://")
		userinfo, host, ok2 := strings.Cut(rest, "@")
		if name, _, hasPw := strings.Cut(userinfo, ":"); ok && ok2 && hasPw {
			return scheme + "://" + name + ":xxxxx@" + host
		}
		return u
	}
	if p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); ok {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	return p.String()
}

// Open connects, migrates the schema, loads the inventory and starts
// following changes. The context bounds the connection attempt only.
func Open(ctx context.Context, opts Options) (*Store, error) {
	masked := MaskURL(opts.URL)
	if !IsURL(opts.URL) {
		return nil, fmt.Errorf("store %q: want postgres://[user[:password]@]host[:port]/database", masked)
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("store %s: %s", masked, strings.ReplaceAll(err.Error(), opts.URL, masked))
	}
	log := logging.OrDiscard(opts.Log).With("store", masked)
	cctx, cancelConnect := context.WithTimeout(ctx, 15*time.Second)
	defer cancelConnect()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err == nil {
		err = pool.Ping(cctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fmt.Errorf("store %s: cannot connect: %w", masked, err)
	}
	if err := migrate(cctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store %s: %w", masked, err)
	}
	s := &Store{url: masked, pool: pool, log: log, writes: make(chan pendingReport, writeQueue), stale: make(chan struct{}, 1)}
	s.wcond = sync.NewCond(&s.wmu)
	if err := s.refreshErr(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store %s: %w", masked, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.running.Add(3)
	listening := make(chan struct{})
	go func() { defer s.running.Done(); s.rereadOnChange(runCtx) }()
	go func() { defer s.running.Done(); s.listen(runCtx, cfg.ConnConfig, listening) }()
	go func() { defer s.running.Done(); s.writeBehind(runCtx) }()
	// A store that is returned follows changes already.
	select {
	case <-listening:
	case <-cctx.Done():
		s.Close()
		return nil, fmt.Errorf("store %s: cannot listen for changes: %w", masked, cctx.Err())
	}
	return s, nil
}

// Close writes the queued boot states (for a while, if the database is
// away), stops following changes and disconnects.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	flushErr := s.waitWritten(ctx)
	cancel()
	s.cancel()
	s.running.Wait()
	var err error
	if n := s.unwritten.Load() + int64(len(s.writes)); n > 0 || flushErr != nil {
		err = fmt.Errorf("store %s: %d boot state writes not stored", s.url, n)
	}
	s.pool.Close()
	return err
}

// querier is what a pool and a transaction share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadInventory reads every group and node and the version they are at;
// q must be one transaction for the two to agree.
func loadInventory(ctx context.Context, q querier) (*inventory.Inventory, int64, error) {
	var v int64
	if err := q.QueryRow(ctx, `SELECT v FROM inventory_version`).Scan(&v); err != nil {
		return nil, 0, err
	}
	f, err := loadFile(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	inv, err := inventory.FromFile(f)
	if err != nil {
		return nil, 0, fmt.Errorf("inventory in the database: %w", err)
	}
	return inv, v, nil
}

// setCache keeps inv unless the cache already holds a newer version.
func (s *Store) setCache(inv *inventory.Inventory, v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil || v > s.invVersion {
		s.inv, s.invVersion = inv, v
	}
}

// listen follows NOTIFY on its own connection, reconnecting while the
// database is away; after a reconnect everything is reread, since
// notifications sent meanwhile are lost.
func (s *Store) listen(ctx context.Context, cc *pgx.ConnConfig, listening chan struct{}) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+chanInventory+"; LISTEN "+chanState)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			s.log.Warn("store: cannot listen for changes; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// What changed before LISTEN took effect sent no notification here.
		s.refresh(ctx)
		if first {
			close(listening)
		} else {
			s.log.Info("store: database back; reread the inventory")
			s.Notify(store.Change{Kind: store.Resync})
		}
		first = false
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("store: lost the database connection; answering from the cache", "err", err)
				}
				break
			}
			switch n.Channel {
			case chanInventory:
				select { // a reread already due covers this change too
				case s.stale <- struct{}{}:
				default:
				}
			case chanState:
				for _, node := range strings.Split(n.Payload, "\n") {
					s.Notify(store.Change{Kind: store.StateChanged, Node: node})
				}
			}
		}
		conn.Close(context.Background())
	}
}

// rereadOnChange rereads the inventory once per burst of notifications: a
// storm of discovered MACs costs a handful of rereads, not one each.
func (s *Store) rereadOnChange(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stale:
		}
		s.refresh(ctx)
		s.Notify(store.Change{Kind: store.InventoryChanged})
	}
}

// refresh rereads the inventory into the cache; on failure the cache stays.
func (s *Store) refresh(ctx context.Context) {
	if err := s.refreshErr(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("store: rereading the inventory failed; keeping the cached one", "err", err)
	}
}

func (s *Store) refreshErr(ctx context.Context) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		inv, v, err := loadInventory(ctx, tx)
		if err == nil {
			s.setCache(inv, v)
		}
		return err
	})
}

// isConnErr tells a lost or refused connection (worth retrying) from an
// error of the statement itself.
func isConnErr(err error) bool {
	if err == nil {
		return false
	}
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		code := pgErr.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") // connection exception, operator intervention
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
