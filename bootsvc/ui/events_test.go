package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// sse is one event-stream client.
type sse struct {
	t  *testing.T
	rd *bufio.Reader
}

type event struct {
	name string
	data string
}

func openStream(t *testing.T, f *fixture, ctx context.Context) *sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+"/ui/events", nil)
	req.Header.Set("Authorization", "Bearer "+viewerTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &sse{t: t, rd: bufio.NewReader(resp.Body)}
}

// next returns the next event, skipping comments and the retry field.
func (s *sse) next() event {
	s.t.Helper()
	var e event
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			s.t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && e.name != "":
			return e
		case strings.HasPrefix(line, "event: "):
			e.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// nextRows returns the rows of the next nodes event. Resyncs before it are
// skipped: with PostgreSQL the test's own import of the inventory is
// announced late, by NOTIFY.
func (s *sse) nextRows() []Row {
	s.t.Helper()
	for {
		if e := s.next(); e.name != "resync" {
			return s.rows(e)
		}
	}
}

func (s *sse) rows(e event) []Row {
	s.t.Helper()
	var d struct{ Rows []Row }
	if e.name != "nodes" || json.Unmarshal([]byte(e.data), &d) != nil {
		s.t.Fatalf("event %s %q, want nodes", e.name, e.data)
	}
	return d.Rows
}

func TestEvents(t *testing.T) {
	for _, b := range []struct {
		name string
		new  func(testing.TB, int) *fixture
	}{{"file store", newFixture}, {"postgres", newPGFixture}} {
		t.Run(b.name, func(t *testing.T) { testEvents(t, b.new(t, 100)) })
	}
}

func testEvents(t *testing.T, f *fixture) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openStream(t, f, ctx)
	if e := s.next(); e.name != "hello" {
		t.Fatalf("first event %q, want hello", e.name)
	}

	t.Run("one report, one row", func(t *testing.T) {
		f.store.Report(ctx, "node007", nodestate.Report{State: nodestate.DHCP})
		rows := s.nextRows()
		if len(rows) != 1 || rows[0].Name != "node007" || rows[0].State != "dhcp" || rows[0].Image != "img" {
			t.Fatalf("rows %+v", rows)
		}
	})

	// 500 reports outrun the store's buffer for one subscriber: the stream
	// must then find what moved itself, not make the page reload.
	t.Run("a burst is batched, each node once, nothing lost", func(t *testing.T) {
		for _, st := range []nodestate.State{nodestate.DHCP, nodestate.IPXE, nodestate.Kernel, nodestate.RootFS, nodestate.Booted} {
			for i := 1; i <= 100; i++ {
				f.store.Report(ctx, fmt.Sprintf("node%03d", i), nodestate.Report{State: st})
			}
		}
		seen := map[string]string{}
		msgs := 0
		for len(seen) < 100 || !allIn(seen, "booted") {
			for _, r := range s.nextRows() {
				seen[r.Name] = r.State
			}
			msgs++
		}
		if msgs > 10 {
			t.Fatalf("%d messages for 500 reports, want them batched", msgs)
		}
	})

	t.Run("inventory change asks for a resync", func(t *testing.T) {
		err := f.store.Update(ctx, func(inv *inventory.Inventory) error {
			return inv.Put(inventory.Node{Name: "extra001", MACs: []string{"02:00:00:00:ff:01"}, Groups: []string{"rack1"}})
		})
		if err != nil {
			t.Fatal(err)
		}
		if e := s.next(); e.name != "resync" {
			t.Fatalf("event %q, want resync", e.name)
		}
	})
}

func allIn(m map[string]string, v string) bool {
	for _, x := range m {
		if x != v {
			return false
		}
	}
	return true
}
