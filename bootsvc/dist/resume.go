package dist

import "net/http"

// Resume is Join for a node that is already fetching from current and
// finds the coordinator does not know it (the boot service restarted and
// lost its last second, or started without its state file): the node is
// registered as Join does, and keeps current as its source when that is
// still a fit one (the boot server, or a live peer neither bad nor avoided),
// so the tree is rebuilt from the nodes instead of being torn up. Otherwise
// the answer is Join's.
func (c *Coordinator) Resume(req JoinRequest, current string) (Source, error) {
	src, err := c.Join(req)
	if err != nil || current == "" || current == src.Peer {
		return src, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.transfers[req.Transfer]
	m := t.nodes[req.Node]
	if m == nil || m.done {
		return src, nil
	}
	if current == ServerSource {
		m.source = current
		return Source{Peer: ServerSource}, nil
	}
	p := t.nodes[current]
	if p == nil || p == m || p.url == "" || p.bad || m.avoid[current] || !c.alive(p, c.now()) {
		return src, nil
	}
	m.source = current
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
