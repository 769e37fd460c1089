package dist

import (
	"net/http"
	"time"
)

// Resume is Join for a node that is already fetching stripe req.Stripe
// from current and
// finds the coordinator does not know it (the boot service restarted and
// lost its last second, or started without its state file): the node is
// registered as Join does, and keeps current as its source unless that is
// known to be unfit (bad, or avoided by the node), so the tree is rebuilt
// from the nodes instead of being torn up. A current peer not known yet is
// kept too (its own resume is on its way): the node does fetch from it, and
// fan-out counts go by that. Otherwise the answer is Join's.
func (c *Coordinator) Resume(req JoinRequest, current string) (Source, error) {
	src, err := c.Join(req)
	if err != nil || current == "" || current == src.Peer || current == req.Node {
		return src, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.transfers[req.Transfer]
	m := t.nodes[req.Node]
	if m == nil || m.done {
		return src, nil
	}
	s := req.Stripe // Join checked it
	if current == ServerSource {
		m.source[s], m.waitSince[s] = current, time.Time{}
		return Source{Peer: ServerSource}, nil
	}
	p := t.nodes[current]
	if m.avoid[current] || (p != nil && p.bad) {
		return src, nil
	}
	m.source[s], m.waitSince[s] = current, time.Time{}
	if p == nil {
		return Source{Peer: current}, nil
	}
	return Source{Peer: p.name, URL: p.url}, nil
}

// resumeBody is a join body plus the source the node fetches from now.
type resumeBody struct {
	joinBody
	Current string `json:"current"`
}

func (a *API) handleResume(w http.ResponseWriter, r *http.Request) {
	var body resumeBody
	if !decode(w, r, &body) {
		return
	}
	req, ok := a.joinRequest(w, r, body.joinBody)
	if !ok {
		return
	}
	src, err := a.c.Resume(req, body.Current)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.log.Info("resume", "node", req.Node, "image", req.Transfer, "held", req.Held, "current", body.Current, "source", src.Peer)
	reply(w, src)
}
