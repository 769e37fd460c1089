// Package nodestate records each node's boot progress (dhcp, ipxe, kernel,
// rootfs, booted, failed) with per-phase timestamps in one JSON file under the
// state directory. Writes are batched: Record updates memory and a background
// flusher writes the file atomically at most once per interval, so a thousand
// phone-homes cost a handful of fsyncs.
package nodestate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/imgctl/imgctl/internal/atomicfile"
	"github.com/imgctl/imgctl/internal/logging"
)

// FileName is the state file's name inside the state directory.
const FileName = "nodestate.json"

// State is a node's boot state, or (InitrdDHCP) a phase of one.
type State string

// Boot states, in the order a healthy boot passes them.
const (
	DHCP   State = "dhcp"
	IPXE   State = "ipxe"
	Kernel State = "kernel"
	RootFS State = "rootfs"
	Booted State = "booted"
	Failed State = "failed"
)

// InitrdDHCP is the phase of the initramfs's own DHCP lease (a lease without
// a boot file). It is not a state: it only adds its time to the boot under
// way, and is ignored unless the node is in Kernel, so lease renewals of a
// running node change nothing.
const InitrdDHCP State = "initrd-dhcp"

// States lists every valid state in boot order.
var States = []State{DHCP, IPXE, Kernel, RootFS, Booted, Failed}

// Valid reports whether s is a known state.
func Valid(s State) bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// Node is one node's last known boot state.
type Node struct {
	Name        string              `json:"name"`
	State       State               `json:"state"`
	Updated     time.Time           `json:"updated"`
	Phases      map[State]time.Time `json:"phases,omitempty"` // when each state was last entered
	Detail      string              `json:"detail,omitempty"`
	ImageDigest string              `json:"image_digest,omitempty"`
	RootMount   string              `json:"root_mount,omitempty"`
	Hostname    string              `json:"hostname,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	CloudInit   string              `json:"cloud_init,omitempty"` // files fetched this boot and from where (cloudinit.go)
	Timeline    *Timeline           `json:"timeline,omitempty"`   // the last booted report's systemd timeline
}

// Report is what a node (or the server on its behalf) reports.
type Report struct {
	State       State  `json:"state"`
	Detail      string `json:"detail,omitempty"`
	ImageDigest string `json:"image_digest,omitempty"`
	RootMount   string `json:"root_mount,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Timeline comes with a booted report: systemd's own boot times.
	Timeline *Timeline `json:"timeline,omitempty"`
}

// Store holds all nodes' states. It is safe for concurrent use.
type Store struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu    sync.Mutex
	nodes map[string]*Node
	dirty bool
	kick  chan struct{}

	onChange func(node string)
}

// Open loads <stateDir>/nodestate.json (a missing file is an empty store).
// flushEvery bounds how long a recorded state may stay unwritten (0 = 1s).
func Open(stateDir string, flushEvery time.Duration, log *slog.Logger) (*Store, error) {
	if flushEvery <= 0 {
		flushEvery = time.Second
	}
	s := &Store{
		path:     stateDir + "/" + FileName,
		interval: flushEvery,
		log:      logging.OrDiscard(log),
		now:      time.Now,
		nodes:    map[string]*Node{},
		kick:     make(chan struct{}, 1),
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node states: %w", err)
	}
	var list []*Node
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("node states %s: %w", s.path, err)
	}
	for _, n := range list {
		s.nodes[n.Name] = n
	}
	return s, nil
}

// Record sets node's state with a free-text detail; it satisfies the DHCP
// server's StateRecorder.
func (s *Store) Record(ctx context.Context, node string, state State, detail string) error {
	return s.Report(ctx, node, Report{State: state, Detail: detail})
}

// Report records a full report for node.
func (s *Store) Report(_ context.Context, node string, r Report) error {
	s.mu.Lock()
	n := s.nodes[node]
	if n == nil {
		n = &Node{Name: node}
	}
	changed, err := Apply(n, r, s.now())
	if changed {
		s.nodes[node] = n
		s.dirty = true
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if changed {
		s.kickFlush()
		s.notify(node)
	}
	return nil
}

// Apply is the boot-state machine every store shares: it applies r to n at
// now and reports whether n changed. A DHCP state starts a new boot (earlier
// phases are dropped); InitrdDHCP only adds its time to a boot in Kernel.
//
// A report older than the record's last change arrived out of order (two boot
// servers writing behind): it only fills in its own phase, if missing, of the
// boot under way, and changes nothing else.
func Apply(n *Node, r Report, now time.Time) (bool, error) {
	now = now.UTC()
	if r.State == CloudInit {
		return applyCloudInit(n, r, now), nil
	}
	if r.State != InitrdDHCP && !Valid(r.State) {
		return false, fmt.Errorf("node %s: unknown state %q (want one of %v)", n.Name, r.State, States)
	}
	if now.Before(n.Updated) {
		if _, ok := n.Phases[r.State]; ok || n.Phases == nil {
			return false, nil
		}
		n.Phases[r.State] = now
		return true, nil
	}
	if r.State == InitrdDHCP {
		if n.State != Kernel {
			return false, nil
		}
		n.Phases[InitrdDHCP], n.Updated = now, now
		return true, nil
	}
	if !Valid(r.State) {
		return false, fmt.Errorf("node %s: unknown state %q (want one of %v)", n.Name, r.State, States)
	}
	if r.Timeline != nil {
		if r.State != Booted {
			return false, fmt.Errorf("node %s: a timeline comes with state %s, not %s", n.Name, Booted, r.State)
		}
		if err := r.Timeline.Validate(); err != nil {
			return false, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	if n.Phases == nil || r.State == DHCP {
		// A new boot begins: earlier phases belong to the previous boot.
		n.Phases = map[State]time.Time{}
		if r.State == DHCP {
			n.Reason, n.CloudInit, n.Timeline = "", "", nil
		}
	}
	n.State, n.Updated, n.Detail = r.State, now, r.Detail
	n.Phases[r.State] = now
	if r.ImageDigest != "" {
		n.ImageDigest = r.ImageDigest
	}
	if r.RootMount != "" {
		n.RootMount = r.RootMount
	}
	if r.Hostname != "" {
		n.Hostname = r.Hostname
	}
	if r.Reason != "" || r.State == Failed {
		n.Reason = r.Reason
	}
	if r.Timeline != nil {
		n.Timeline = r.Timeline.clone()
	}
	return true, nil
}

// Put replaces the records of nodes (an import); the file is written at the
// next flush.
func (s *Store) Put(nodes []Node) {
	s.mu.Lock()
	for _, n := range nodes {
		c := copyNode(&n)
		s.nodes[n.Name] = &c
	}
	s.dirty = true
	s.mu.Unlock()
	s.kickFlush()
	for _, n := range nodes {
		s.notify(n.Name)
	}
}

// OnChange sets fn to be called (outside the lock) with each node whose
// record changed. Set it before the store is shared.
func (s *Store) OnChange(fn func(node string)) { s.onChange = fn }

func (s *Store) notify(node string) {
	if s.onChange != nil {
		s.onChange(node)
	}
}

// kickFlush wakes the flusher without blocking.
func (s *Store) kickFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Get returns a copy of one node's state.
func (s *Store) Get(node string) (Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[node]
	if !ok {
		return Node{}, false
	}
	return copyNode(n), true
}

// List returns a copy of every node's state, sorted by name.
func (s *Store) List() []Node {
	s.mu.Lock()
	out := make([]Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, copyNode(n))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Counts returns how many nodes are in each state.
func (s *Store) Counts() map[State]int {
	c := map[State]int{}
	s.mu.Lock()
	for _, n := range s.nodes {
		c[n.State]++
	}
	s.mu.Unlock()
	return c
}

func copyNode(n *Node) Node {
	c := *n
	c.Timeline = n.Timeline.clone()
	c.Phases = make(map[State]time.Time, len(n.Phases))
	for k, v := range n.Phases {
		c.Phases[k] = v
	}
	return c
}

// Flush writes the file now if anything changed since the last write.
func (s *Store) Flush() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	list := make([]*Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		c := copyNode(n)
		list = append(list, &c)
	}
	s.dirty = false
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	b, err := json.MarshalIndent(list, "", "  ")
	if err == nil {
		err = atomicfile.WriteFile(s.path, append(b, '\n'), 0o644)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true // try again next round
		s.mu.Unlock()
		return fmt.Errorf("write node states: %w", err)
	}
	return nil
}

// Run flushes batched changes until ctx ends, then flushes a last time.
func (s *Store) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return s.Flush()
		case <-s.kick:
		}
		// Gather whatever else arrives within the interval into one write.
		select {
		case <-ctx.Done():
			return s.Flush()
		case <-time.After(s.interval):
		}
		if err := s.Flush(); err != nil {
			s.log.Error("node states", "err", err)
		}
	}
}

// Stale reports whether a node booted a digest other than its image's current one.
func Stale(n Node, currentDigest string) bool {
	return n.ImageDigest != "" && currentDigest != "" && n.ImageDigest != currentDigest
}
