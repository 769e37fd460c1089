package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
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
		c.cur.set(name)
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
	c.lingerServe(ctx, h, o.linger)
	stopServing()
	c.leave(context.WithoutCancel(ctx))
	return nil
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
