package nodestate

import (
	"slices"
	"strings"
	"time"
)

// CloudInit is the phase of a node's cloud-init fetching its NoCloud files
// from the boot service. Like InitrdDHCP it is not a state: it adds its
// time, and the file (Report.Detail: "user-data from 10.0.0.5") to
// Node.CloudInit, to the boot under way, without changing the state.
const CloudInit State = "cloud-init"

// applyCloudInit records one fetch; a node with no boot under way (no
// phases) has nothing to add it to.
func applyCloudInit(n *Node, r Report, now time.Time) bool {
	if n.Phases == nil || n.State == Failed {
		return false
	}
	file, from, _ := strings.Cut(r.Detail, " from ")
	files, _, _ := strings.Cut(n.CloudInit, " from ")
	list := strings.Fields(files)
	if file != "" && !slices.Contains(list, file) {
		list = append(list, file)
	}
	n.Phases[CloudInit] = now
	n.CloudInit = strings.Join(list, " ")
	if from != "" {
		n.CloudInit += " from " + from
	}
	return true
}
