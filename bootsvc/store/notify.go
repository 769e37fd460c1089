package store

import (
	"context"
	"sync"
	"time"
)

// Notifier fans changes out to Watch subscribers; backends embed one. The
// zero value is ready to use.
type Notifier struct {
	mu   sync.Mutex
	subs map[chan Change]bool // true: the subscriber missed changes
}

// watchBuffer is how many changes a subscriber may fall behind before it is
// told to resync instead.
const watchBuffer = 256

// resyncRetry is how often a pending resync is offered again.
const resyncRetry = 100 * time.Millisecond

// Watch is Store.Watch.
func (n *Notifier) Watch(ctx context.Context) <-chan Change {
	ch := make(chan Change, watchBuffer)
	n.mu.Lock()
	if n.subs == nil {
		n.subs = map[chan Change]bool{}
	}
	n.subs[ch] = false
	n.mu.Unlock()
	go func() {
		// A subscriber that missed changes at the end of a burst would hear
		// of it only with the next change, which may never come: hand the
		// resync over as soon as it has room.
		retry := time.NewTicker(resyncRetry)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				n.mu.Lock()
				delete(n.subs, ch)
				close(ch)
				n.mu.Unlock()
				return
			case <-retry.C:
				n.mu.Lock()
				if n.subs[ch] {
					select {
					case ch <- Change{Kind: Resync}:
						n.subs[ch] = false
					default:
					}
				}
				n.mu.Unlock()
			}
		}
	}()
	return ch
}

// Notify delivers c to every subscriber without blocking.
func (n *Notifier) Notify(c Change) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch, missed := range n.subs {
		if missed {
			// Keep trying to hand over the resync; once it is in, carry on.
			select {
			case ch <- Change{Kind: Resync}:
				n.subs[ch] = false
			default:
				continue
			}
		}
		select {
		case ch <- c:
		default:
			n.subs[ch] = true
		}
	}
}
