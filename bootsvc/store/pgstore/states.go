package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// writeQueue bounds the boot-state writes waiting for the database (while
// it is away, too).
const writeQueue = 10000

// maxBatch is how many reports one transaction writes at most.
const maxBatch = 500

// pendingReport is a state write waiting for the database.
type pendingReport struct {
	seq  uint64
	node string
	r    nodestate.Report
	at   time.Time // when the node reported it
}

// Report implements store.Store. Reports are written behind: the call
// returns once the report is queued, and one writer commits what queued up
// in one transaction (group commit), so a DHCP reply does not wait for the
// database, and a lost database delays the writes instead of losing them.
// Reads of states in this process wait for the writes queued before them.
// The state machine runs inside the transaction under a lock per node, so
// reports of one node through several servers land in one record, in order.
func (s *Store) Report(ctx context.Context, node string, r nodestate.Report) error {
	// Refuse what no store would take before anything is queued.
	scratch := nodestate.Node{Name: node}
	if _, err := nodestate.Apply(&scratch, r, time.Now()); err != nil {
		return err
	}
	// Numbered and queued under one lock, so the queue is in number order
	// and "written up to N" means every report up to N.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	p := pendingReport{seq: s.queued + 1, node: node, r: r, at: time.Now()}
	select {
	case s.writes <- p:
		s.queued = p.seq
		return nil
	default:
		return fmt.Errorf("store %s: %d boot states already wait for the database", s.url, writeQueue)
	}
}

// writeBehind commits queued reports in batches until ctx ends, retrying a
// batch while the database is away.
func (s *Store) writeBehind(ctx context.Context) {
	for {
		var batch []pendingReport
		select {
		case <-ctx.Done():
			return
		case p := <-s.writes:
			batch = append(batch, p)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case p := <-s.writes:
				batch = append(batch, p)
			default:
				break more
			}
		}
		for backoff, warned := 200*time.Millisecond, false; ; backoff = min(2*backoff, 5*time.Second) {
			err := s.writeReports(ctx, batch)
			if err == nil {
				if warned {
					s.log.Info("store: queued boot states written", "reports", len(batch))
				}
				break
			}
			if ctx.Err() != nil {
				s.unwritten.Add(int64(len(batch) + len(s.writes)))
				return
			}
			if !isConnErr(err) {
				s.log.Error("store: boot states dropped", "reports", len(batch), "err", err)
				break
			}
			if !warned {
				s.log.Warn("store: database unavailable; boot states wait", "reports", len(batch), "err", err)
				warned = true
			}
			select {
			case <-ctx.Done():
				s.unwritten.Add(int64(len(batch) + len(s.writes)))
				return
			case <-time.After(backoff):
			}
		}
		s.wmu.Lock()
		s.written = batch[len(batch)-1].seq
		s.wcond.Broadcast()
		s.wmu.Unlock()
	}
}

// writeReports applies a batch in one transaction: the nodes' records are
// locked (in one order on every server, so two never deadlock), read, run
// through the state machine in report order, and written back.
func (s *Store) writeReports(ctx context.Context, batch []pendingReport) error {
	var names []string
	seen := map[string]bool{}
	for _, p := range batch {
		if !seen[p.node] {
			seen[p.node] = true
			names = append(names, p.node)
		}
	}
	var changed []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A row lock cannot hold a record that does not exist yet; an
		// advisory lock per node name can.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, h) FROM (SELECT DISTINCT hashtext(n) AS h FROM unnest($2::text[]) n) l ORDER BY h`,
			stateLock, names); err != nil {
			return err
		}
		recs := map[string]*nodestate.Node{}
		rows, err := tx.Query(ctx, `SELECT name, doc FROM node_states WHERE name = ANY($1)`, names)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var doc []byte
			if err := rows.Scan(&name, &doc); err != nil {
				return err
			}
			n := &nodestate.Node{}
			if err := json.Unmarshal(doc, n); err != nil {
				return fmt.Errorf("state of %s: %w", name, err)
			}
			recs[name] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		dirty := map[string]bool{}
		changed = changed[:0]
		for _, p := range batch {
			n := recs[p.node]
			if n == nil {
				n = &nodestate.Node{Name: p.node}
				recs[p.node] = n
			}
			if ok, err := nodestate.Apply(n, p.r, p.at); err == nil && ok && !dirty[p.node] {
				dirty[p.node] = true
				changed = append(changed, p.node)
			}
		}
		b := &pgx.Batch{}
		for _, name := range changed {
			doc, err := json.Marshal(recs[name])
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO node_states (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc`, name, doc)
		}
		for _, payload := range notifyPayloads(changed) {
			b.Queue(`SELECT pg_notify($1, $2)`, chanState, payload)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return err
	}
	for _, name := range changed {
		s.Notify(store.Change{Kind: store.StateChanged, Node: name})
	}
	return nil
}

// notifyPayloads joins node names into NOTIFY payloads (one per line) below
// PostgreSQL's 8,000-byte limit.
func notifyPayloads(names []string) []string {
	var out []string
	var cur strings.Builder
	for _, n := range names {
		if cur.Len() > 0 && cur.Len()+1+len(n) > 7000 {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(n)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// waitWritten waits until the reports queued so far are in the database (or
// ctx ends): reads in this process see this process's writes.
func (s *Store) waitWritten(ctx context.Context) error {
	s.wmu.Lock()
	target := s.queued
	s.wmu.Unlock()
	if target == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		s.wmu.Lock()
		s.wcond.Broadcast()
		s.wmu.Unlock()
	})
	defer stop()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for s.written < target {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boot states not written yet: %w", err)
		}
		s.wcond.Wait()
	}
	return nil
}

// State implements store.Store.
func (s *Store) State(ctx context.Context, node string) (nodestate.Node, error) {
	if err := s.waitWritten(ctx); err != nil {
		return nodestate.Node{}, err
	}
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM node_states WHERE name = $1`, node).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nodestate.Node{}, fmt.Errorf("state of %s: %w", node, store.ErrNotFound)
	}
	if err != nil {
		return nodestate.Node{}, fmt.Errorf("state of %s: %w", node, err)
	}
	var n nodestate.Node
	if err := json.Unmarshal(doc, &n); err != nil {
		return nodestate.Node{}, fmt.Errorf("state of %s: %w", node, err)
	}
	return n, nil
}

// States implements store.Store.
func (s *Store) States(ctx context.Context) ([]nodestate.Node, error) {
	if err := s.waitWritten(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT doc FROM node_states ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("node states: %w", err)
	}
	defer rows.Close()
	var out []nodestate.Node
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var n nodestate.Node
		if err := json.Unmarshal(doc, &n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func putStates(ctx context.Context, tx pgx.Tx, states []nodestate.Node) error {
	b := &pgx.Batch{}
	for _, n := range states {
		doc, err := json.Marshal(n)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO node_states (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc`, n.Name, doc)
	}
	return tx.SendBatch(ctx, b).Close()
}
