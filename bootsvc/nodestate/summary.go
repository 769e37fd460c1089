package nodestate

import (
	"fmt"
	"strings"
	"time"
)

// Summary is a node's boot state as `imgctl node ls` shows it.
type Summary struct {
	State  string `json:"state"`
	Since  string `json:"since"`            // time in the current state, e.g. 3m12s
	Phases string `json:"phases,omitempty"` // seconds from the first phase: "dhcp 0s, ipxe 2s, kernel 3s, booted 48s"
	Digest string `json:"booted_digest,omitempty"`
	Stale  bool   `json:"stale"` // booted a digest other than the image's current one
	Reason string `json:"reason,omitempty"`
	// CloudInit names the cloud-init files the node fetched this boot.
	CloudInit string `json:"cloud_init,omitempty"`
	// Userspace and Slowest come from the booted node's systemd timeline.
	Userspace string    `json:"userspace,omitempty"`     // "30.2s": switch-root to multi-user
	Slowest   string    `json:"slowest_units,omitempty"` // "a.service 9.0s, b.service 2.1s"
	Timeline  *Timeline `json:"timeline,omitempty"`
}

// Summarize renders n for listing; currentDigest is the node's image's current
// digest ("" when unknown), now the time to measure from.
func Summarize(n Node, currentDigest string, now time.Time) Summary {
	s := Summary{State: string(n.State), Digest: n.ImageDigest, Stale: Stale(n, currentDigest), Reason: n.Reason, CloudInit: n.CloudInit}
	if n.State == "" {
		s.State = "unknown"
		return s
	}
	if !n.Updated.IsZero() {
		s.Since = now.Sub(n.Updated).Round(time.Second).String()
	}
	order := []State{DHCP, IPXE, Kernel, InitrdDHCP, RootFS, CloudInit, Booted, Failed}
	var first time.Time
	for _, st := range order {
		if t, ok := n.Phases[st]; ok && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	var parts []string
	for _, st := range order {
		if t, ok := n.Phases[st]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", st, t.Sub(first).Round(time.Second)))
		}
	}
	s.Phases = strings.Join(parts, ", ")
	if t := n.Timeline; t != nil {
		s.Timeline = t.clone()
		s.Userspace = fmt.Sprintf("%.1fs", t.UserspaceS)
		s.Slowest = t.SlowestString(3)
	}
	return s
}
