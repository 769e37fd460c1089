package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// coordinator talks to bootsvc/dist; wire form in docs/PROTOCOL.md.
type coordinator struct {
	o         treeOpts
	transfer  string
	pieces    int
	pieceSize int64
	peerPort  int
	stripes   [][2]int       // pieces [a, b) of each stripe
	cur       currentSources // per stripe, what the fetch loop reads from (a resume keeps it)
}

type badPiece struct {
	Peer  string `json:"peer"`
	Piece int    `json:"piece"`
}

type source struct {
	Peer  string        `json:"peer"`
	URL   string        `json:"url"`
	Retry time.Duration `json:"retry"`
}

func (c *coordinator) call(ctx context.Context, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, _ := json.Marshal(body)
	u := strings.TrimRight(c.o.coordinator, "/") + "/" + path + "?token=" + url.QueryEscape(c.o.token)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("coordinator %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", errNotJoined, err)
		}
		return err
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// join asks for stripe's source; the node holds stripeHeld pieces from the
// stripe's start.
func (c *coordinator) join(ctx context.Context, h *holder, stripe, stripeHeld int, failed []string, bad []badPiece) (source, error) {
	var s source
	held, _ := h.state()
	err := c.call(ctx, "join", map[string]any{"transfer": c.transfer, "pieces": c.pieces, "piece_size": c.pieceSize,
		"stripes": len(c.stripes), "stripe": stripe, "stripe_held": stripeHeld,
		"node": c.o.node, "held": held, "failed": failed, "bad": bad, "peer_port": c.peerPort}, &s)
	return s, err
}

// progress reports what h holds; the reply says whether children still
// fetch from this node.
func (c *coordinator) progress(ctx context.Context, h *holder) (serve bool, err error) {
	held, from := h.state()
	var rep struct {
		Serve bool `json:"serve"`
	}
	body := map[string]any{"transfer": c.transfer, "node": c.o.node, "held": held, "from": from, "done": held == c.pieces}
	if len(c.stripes) > 1 {
		sh := make([]int, len(c.stripes))
		for s, r := range c.stripes {
			sh[s] = h.run(r[0], r[1])
		}
		body["stripe_held"] = sh
	}
	err = c.call(ctx, "progress", body, &rep)
	if errors.Is(err, errNotJoined) {
		if err = c.resume(ctx, h); err == nil {
			err = c.call(ctx, "progress", body, &rep) // known again: report the counts
		}
	}
	return rep.Serve, err
}

func (c *coordinator) leave(ctx context.Context) error {
	return c.call(ctx, "leave", map[string]any{"transfer": c.transfer, "node": c.o.node}, nil)
}

// reporter sends progress when kicked (coalesced) and as a heartbeat every
// half stall period, until ctx ends.
func (c *coordinator) reporter(ctx context.Context, h *holder) chan<- struct{} {
	kick := make(chan struct{}, 1)
	go func() {
		tick := time.NewTicker(max(c.o.stall/2, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			case <-tick.C:
			}
			c.progress(ctx, h) // best effort: the next report carries the totals
		}
	}()
	return kick
}

// getJSON GETs u and decodes its JSON body into out.
func getJSON(ctx context.Context, u string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
