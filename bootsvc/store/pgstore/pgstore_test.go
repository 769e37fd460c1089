package pgstore

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore/pgtest"
	"github.com/imgctl/imgctl/bootsvc/store/storetest"
)

// TestPostgreSQL runs everything against one real PostgreSQL server, a new
// database for each store.
func TestPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	open := func(t *testing.T, url string) *Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := Open(ctx, Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, pg.NewDatabase(t)) })
	})
	t.Run("TwoServersOneDatabase", func(t *testing.T) {
		url := pg.NewDatabase(t)
		a, b := open(t, url), open(t, url)
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		changes := b.Watch(ctx)
		if err := a.Update(ctx, func(inv *inventory.Inventory) error {
			return inv.Put(inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.48.0.11"})
		}); err != nil {
			t.Fatal(err)
		}
		// b learns of a's write by NOTIFY, and answers from its cache.
		for {
			if _, err := b.Node(ctx, "nid001"); err == nil {
				break
			}
			select {
			case <-changes:
			case <-ctx.Done():
				t.Fatal("the second server never saw the first one's node")
			}
		}
		// Phases through either server land in one record.
		for i, st := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.Booted} {
			srv := []*Store{a, b}[i%2]
			if err := srv.Report(ctx, "nid001", nodestate.Report{State: st}); err != nil {
				t.Fatal(err)
			}
		}
		// Each server writes behind; once both have written, the record
		// holds every phase in event order, whichever order the writes took.
		if _, err := b.State(ctx, "nid001"); err != nil {
			t.Fatal(err)
		}
		n, err := a.State(ctx, "nid001")
		if err != nil || n.State != nodestate.Booted || len(n.Phases) != 4 {
			t.Fatalf("record = %+v, %v; want booted with 4 phases", n, err)
		}
	})
	t.Run("NewerSchemaRefused", func(t *testing.T) {
		url := pg.NewDatabase(t)
		s := open(t, url)
		if _, err := s.pool.Exec(context.Background(), `INSERT INTO imgctl_schema (version) VALUES (999)`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := Open(context.Background(), Options{URL: url})
		if err == nil || !strings.Contains(err.Error(), "newer than this imgctl") {
			t.Fatalf("open of a newer schema: %v", err)
		}
	})
	t.Run("BadURLs", func(t *testing.T) {
		for _, tc := range []struct{ url, want string }{
			{"mysql://x", "want postgres://"},
			{"postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=2", "cannot connect"},
			{"postgres://user:s3cret@[::1/db", "postgres://"},
		} {
			_, err := Open(context.Background(), Options{URL: tc.url})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("open %s: %v; want %q and no password", tc.url, err, tc.want)
			}
		}
	})
	t.Run("DatabaseLostWhileServing", func(t *testing.T) {
		url := pg.NewDatabase(t)
		s := open(t, url)
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := s.Update(ctx, func(inv *inventory.Inventory) error {
			return inv.Put(inventory.Node{Name: "nid001", MACs: []string{"02:00:00:00:00:01"}, IP: "10.48.0.11"})
		}); err != nil {
			t.Fatal(err)
		}
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		restarted := false
		defer func() {
			if !restarted {
				pg.Restart()
			}
		}()
		// Lookups come from the cache; the report is queued.
		if _, err := s.NodeByMAC(ctx, mustMAC(t, "02:00:00:00:00:01")); err != nil {
			t.Fatalf("lookup with the database down: %v", err)
		}
		if err := s.Report(ctx, "nid001", nodestate.Report{State: nodestate.DHCP}); err != nil {
			t.Fatalf("report with the database down: %v", err)
		}
		changes := s.Watch(ctx)
		if err := pg.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		for {
			if n, err := s.State(ctx, "nid001"); err == nil && n.State == nodestate.DHCP {
				break
			}
			select {
			case <-changes:
			case <-time.After(time.Second): // the retry loop backs off; look again
			case <-ctx.Done():
				t.Fatal("the queued report never reached the database")
			}
		}
	})
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
