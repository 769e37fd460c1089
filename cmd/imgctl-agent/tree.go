package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// serverSource is how the coordinator names the boot server (bootsvc/dist).
const serverSource = "@server"

// treeOpts are tree mode's settings (imgctl.dist=tree and friends).
type treeOpts struct {
	coordinator string        // coordinator API base URL (…/api/v1/dist/)
	node, token string        // this node
	listen      string        // where to serve pieces, e.g. ":7073"
	stall       time.Duration // no bytes for this long: the source has stalled
	linger      time.Duration // after finishing, serve children at most this long
}

// coordinator talks to bootsvc/dist; wire form in docs/PROTOCOL.md.
type coordinator struct {
	o         treeOpts
	transfer  string
	pieces    int
	pieceSize int64
	peerPort  int
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
		return fmt.Errorf("coordinator %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *coordinator) join(ctx context.Context, held int, failed []string, bad []badPiece) (source, error) {
	var s source
	err := c.call(ctx, "join", map[string]any{"transfer": c.transfer, "pieces": c.pieces, "piece_size": c.pieceSize,
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
	err = c.call(ctx, "progress", map[string]any{"transfer": c.transfer, "node": c.o.node, "held": held, "from": from,
		"done": held == c.pieces}, &rep)
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

// servePeers serves h's pieces on o.listen until ctx ends; it returns the
// port it listens on.
func servePeers(ctx context.Context, h *holder, o treeOpts) (int, error) {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return 0, fmt.Errorf("serve pieces: %w", err)
	}
	// A piece not held yet is waited for half a stall period, then refused
	// (503): the child's stall check (a full period) never fires on a
	// parent that merely waits for its own source.
	srv := &http.Server{Handler: h.handler(o.stall / 2), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// fetchTree receives the root image in tree mode: from the source the
// coordinator names (the server at rootURL, or a peer), piece by piece in
// order, each verified against the manifest before it is written and served
// on; a source that fails or stalls is reported and the node re-asks,
// resuming at its first missing piece; a peer whose piece fails verification
// is reported by name and the piece is fetched elsewhere. The server itself
// gets retries attempts (growing backoff) as in plain HTTP mode.
func fetchTree(ctx context.Context, rootURL string, m *manifest, out string, o treeOpts, retries int, backoff time.Duration) error {
	size := m.Artifacts["rootfs"].Size
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	n := len(m.Root.Pieces)
	h := newHolder(f, size, m.Root.PieceSize, n, 0)
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	port, err := servePeers(sctx, h, o)
	if err != nil {
		return err
	}
	c := &coordinator{o: o, transfer: m.ImageDigest, pieces: n, pieceSize: m.Root.PieceSize, peerPort: port}
	kick := c.reporter(sctx, h)
	whole := sha256.New()
	buf := make([]byte, m.Root.PieceSize)
	var failed []string
	var bad []badPiece
	serverErrs := 0
	for held, _ := h.state(); held < n; held, _ = h.state() {
		src, err := c.join(ctx, held, failed, bad)
		failed, bad = nil, nil
		if err != nil {
			// Without a coordinator the server is still a source.
			fmt.Fprintln(os.Stderr, "imgctl-agent: coordinator unreachable, fetching from the server:", err)
			src = source{Peer: serverSource}
		}
		if src.Retry > 0 {
			sleep(ctx, src.Retry)
			continue
		}
		name, u := src.Peer, src.URL
		if name == serverSource || u == "" {
			name, u = serverSource, rootURL
		}
		lastGain := time.Now()
		for held < n {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			off := int64(held) * m.Root.PieceSize
			end := min(off+m.Root.PieceSize, size) - 1
			piece, err := getStalling(ctx, u, off, end, buf, o.stall)
			if errors.Is(err, errBehind) && name != serverSource && time.Since(lastGain) < 4*o.stall {
				continue // the peer is alive and waits for this piece itself (deep in a chain at the start)
			}
			if err == nil {
				if sum := sha256.Sum256(piece); hex.EncodeToString(sum[:]) != m.Root.Pieces[held] {
					err = errMismatch{fmt.Sprintf("piece %d from %s: sha256 %s, manifest says %s", held, name, hex.EncodeToString(sum[:]), m.Root.Pieces[held])}
				}
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "imgctl-agent:", err)
				if name == serverSource {
					if serverErrs++; serverErrs >= retries {
						return fmt.Errorf("root image %s: %w", rootURL, err)
					}
					sleep(ctx, time.Duration(serverErrs)*backoff)
					failed = []string{serverSource}
				} else if errors.As(err, new(errMismatch)) {
					bad = []badPiece{{Peer: name, Piece: held}}
				} else {
					failed = []string{name}
				}
				break
			}
			if _, err := f.WriteAt(piece, off); err != nil {
				return err
			}
			whole.Write(piece)
			h.add(name)
			lastGain = time.Now()
			held++
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
	if got := hex.EncodeToString(whole.Sum(nil)); got != m.Artifacts["rootfs"].SHA256 {
		return errMismatch{fmt.Sprintf("root image sha256 %s, manifest says %s", got, m.Artifacts["rootfs"].SHA256)}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imgctl-agent: root image verified (%d pieces)\n", n)
	// Children trail by about a piece: keep serving while the coordinator
	// says any still fetch from this node, within the linger bound.
	deadline := time.Now().Add(o.linger)
	for {
		serve, err := c.progress(ctx, h)
		if err != nil || !serve || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	stopServing()
	c.leave(context.WithoutCancel(ctx))
	return nil
}

// errBehind is a peer's 503: it does not hold the piece yet.
var errBehind = errors.New("source does not hold the piece yet")

// minPerStall is the least a source must deliver per stall period: a link
// that trickles (a few bytes a second) is as good as dead.
const minPerStall = 64 << 10

// getStalling fetches bytes [from, to] of u into buf; the request fails
// when fewer than minPerStall bytes arrive in a stall period (a source that
// died, hangs or trickles).
func getStalling(ctx context.Context, u string, from, to int64, buf []byte, stall time.Duration) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got atomic.Int64
	var timedOut atomic.Bool
	go func() {
		tick := time.NewTicker(stall)
		defer tick.Stop()
		last := int64(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := got.Load()
			if n-last < minPerStall && n < to-from+1 {
				timedOut.Store(true)
				cancel()
				return
			}
			last = n
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, stalled(err, &timedOut)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return nil, fmt.Errorf("GET %s: %w", u, errBehind)
	}
	if resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	want := int(to - from + 1)
	n := 0
	for n < want {
		k, err := resp.Body.Read(buf[n:want])
		n += k
		got.Store(int64(n))
		if err == io.EOF && n < want {
			return nil, fmt.Errorf("GET %s: %d of %d bytes", u, n, want)
		}
		if err != nil && err != io.EOF {
			return nil, stalled(err, &timedOut)
		}
	}
	return buf[:want], nil
}

// stalled names a stall for what it is rather than "context canceled".
func stalled(err error, timedOut *atomic.Bool) error {
	if timedOut.Load() {
		return fmt.Errorf("source stalled (under %d KiB in a stall period): %w", minPerStall>>10, err)
	}
	return err
}

// treeFlags are the tree-mode flags fetch and seed share.
type treeFlags struct {
	coord, node, token *string
	peerPort, stall    *int
}

func registerTreeFlags(fs *flag.FlagSet) treeFlags {
	return treeFlags{
		coord:    fs.String("coordinator", "", "tree: coordinator API URL (imgctl.coordinator)"),
		node:     fs.String("node", "", "tree: this node's name (imgctl.node)"),
		token:    fs.String("token", "", "tree: this node's token (imgctl.token)"),
		peerPort: fs.Int("peer-port", 7073, "tree: port to serve held pieces on (imgctl.peerport)"),
		stall:    fs.Int("stall", 15, "tree: seconds without bytes before a source counts as stalled; heartbeats every half (imgctl.stall)"),
	}
}

// opts returns tree options, or nil in http mode.
func (f treeFlags) opts(dist string, linger time.Duration) (*treeOpts, error) {
	switch dist {
	case "", "http":
		return nil, nil
	case "tree":
	default:
		return nil, usageErr("--dist " + dist + ": want http or tree")
	}
	if *f.coord == "" || *f.node == "" {
		return nil, usageErr("tree mode needs --coordinator and --node")
	}
	stall := *f.stall
	if stall <= 0 {
		stall = 15
	}
	return &treeOpts{coordinator: *f.coord, node: *f.node, token: *f.token, listen: ":" + strconv.Itoa(*f.peerPort),
		stall: time.Duration(stall) * time.Second, linger: linger}, nil
}
