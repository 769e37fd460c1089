package vmboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// stateWatch follows one node's boot state during one boot.
type stateWatch struct {
	states       States
	node         string
	since, start time.Time // records older than since belong to earlier boots
	progress     io.Writer
	seen         map[nodestate.State]bool
	phases       []Phase
	final        *nodestate.Node
}

// poll reads the node's state and reports its new phases of this boot. No
// record yet is normal; other read errors are returned (the file store's
// are transient: it replaces its file atomically).
func (w *stateWatch) poll(ctx context.Context) error {
	n, err := w.states.State(ctx, w.node)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if w.seen == nil {
		w.seen = map[nodestate.State]bool{}
	}
	var fresh []Phase
	for phase, at := range n.Phases {
		if at.Before(w.since) || w.seen[phase] {
			continue
		}
		w.seen[phase] = true
		fresh = append(fresh, Phase{Source: "server", Phase: string(phase), At: at.Sub(w.start).Seconds()})
	}
	sortPhases(fresh)
	for _, p := range fresh {
		fmt.Fprintf(w.progress, "%s: %6.1fs  server   %s\n", w.node, p.At, p.Phase)
	}
	w.phases = append(w.phases, fresh...)
	if !n.Updated.Before(w.since) {
		w.final = &n
	}
	return nil
}

// booted is vm.Config.Booted: the node phoned home `booted` during this boot.
// A `failed` report is not final (the node retries, then powers off), and a
// read error is not either: the next poll tries again.
func (w *stateWatch) booted(ctx context.Context) (bool, error) {
	w.poll(ctx)
	return w.final != nil && w.final.State == nodestate.Booted, nil
}

func (w *stateWatch) last() (nodestate.Node, bool) {
	if w.final == nil {
		return nodestate.Node{}, false
	}
	return *w.final, true
}

func sortPhases(p []Phase) {
	sort.SliceStable(p, func(i, j int) bool { return p[i].At < p[j].At })
}
