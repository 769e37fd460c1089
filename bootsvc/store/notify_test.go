package store

import (
	"context"
	"testing"
	"time"
)

// TestNotifyResyncAfterBurst: a subscriber that fell behind at the very end
// of a burst still hears that it must resync, with no further change.
func TestNotifyResyncAfterBurst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n Notifier
	ch := n.Watch(ctx)
	for i := 0; i < watchBuffer+10; i++ {
		n.Notify(Change{Kind: StateChanged, Node: "n1"})
	}
	got := 0
	for {
		select {
		case c := <-ch:
			if c.Kind == Resync {
				if got != watchBuffer {
					t.Fatalf("resync after %d changes, want %d", got, watchBuffer)
				}
				return
			}
			got++
		case <-ctx.Done():
			t.Fatalf("no resync after %d changes", got)
		}
	}
}
