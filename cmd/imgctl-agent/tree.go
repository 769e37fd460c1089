package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"sync"
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

// layout is how a tree transfer cuts the root image: the pieces nodes
// verify and pass on (the boot service's finer table, or the manifest's own
// pieces), and the stripes, each a run of whole manifest pieces fetched from
// its own source.
type layout struct {
	pieceSize int64
	pieces    []string // sha256 per piece
	stripes   [][2]int // pieces [a, b) of each stripe
	perPiece  int      // pieces per manifest piece
}

// pieceTable is bootsvc/dist's PieceTable.
type pieceTable struct {
	ImageDigest string   `json:"image_digest"`
	PieceSize   int64    `json:"piece_size"`
	Pieces      []string `json:"pieces"`
	Stripes     int      `json:"stripes"`
}

// loadLayout asks the coordinator for the finer piece table; without one
// (an older boot service, or none reachable) the manifest's pieces are the
// unit, in one stripe. A table that does not fit the manifest is refused.
func loadLayout(ctx context.Context, o treeOpts, m *manifest) layout {
	size := m.Artifacts["rootfs"].Size
	l := layout{pieceSize: m.Root.PieceSize, pieces: m.Root.Pieces, stripes: [][2]int{{0, len(m.Root.Pieces)}}, perPiece: 1}
	var t pieceTable
	q := url.Values{"image": {m.Name}, "digest": {strings.TrimPrefix(m.ImageDigest, "sha256:")}}
	if err := getJSON(ctx, strings.TrimRight(o.coordinator, "/")+"/pieces?"+q.Encode(), &t); err != nil {
		fmt.Fprintln(os.Stderr, "imgctl-agent: no finer piece table, passing on manifest pieces:", err)
		return l
	}
	if t.ImageDigest != m.ImageDigest || t.PieceSize <= 0 || m.Root.PieceSize%t.PieceSize != 0 ||
		int64(len(t.Pieces)) != piecesFor(size, t.PieceSize) {
		fmt.Fprintf(os.Stderr, "imgctl-agent: piece table (%d pieces of %d bytes for %s) does not fit the manifest; passing on manifest pieces\n",
			len(t.Pieces), t.PieceSize, t.ImageDigest)
		return l
	}
	l.pieceSize, l.pieces, l.perPiece = t.PieceSize, t.Pieces, int(m.Root.PieceSize/t.PieceSize)
	// Stripes are runs of whole manifest pieces, so each manifest piece is
	// checked by the one stripe that receives it.
	k := min(max(t.Stripes, 1), len(m.Root.Pieces))
	l.stripes = nil
	for s := range k {
		a, b := s*len(m.Root.Pieces)/k*l.perPiece, min((s+1)*len(m.Root.Pieces)/k*l.perPiece, len(l.pieces))
		l.stripes = append(l.stripes, [2]int{a, b})
	}
	return l
}

// fetchTree receives the root image in tree mode: each stripe from the
// source the coordinator names for it (the server at rootURL, or a peer),
// piece by piece in order over one streamed request, each piece verified
// before it is written and served on, and every manifest piece verified
// again once all of its pieces are in. A source that fails or stalls is
// reported and the stripe re-asks, resuming at its first missing piece; a
// peer whose piece fails verification is reported by name and the piece is
// fetched elsewhere. The server itself gets retries attempts (growing
// backoff) as in plain HTTP mode.
func fetchTree(ctx context.Context, rootURL string, m *manifest, out string, o treeOpts, retries int, backoff time.Duration) error {
	size := m.Artifacts["rootfs"].Size
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	l := loadLayout(ctx, o, m)
	n := len(l.pieces)
	h := newHolder(f, size, l.pieceSize, n, 0)
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	port, err := servePeers(sctx, h, o)
	if err != nil {
		return err
	}
	c := &coordinator{o: o, transfer: m.ImageDigest, pieces: n, pieceSize: l.pieceSize, peerPort: port, stripes: l.stripes}
	kick := c.reporter(sctx, h)
	st := &stripeFetch{rootURL: rootURL, m: m, f: f, h: h, l: l, o: o, c: c, kick: kick, retries: retries, backoff: backoff}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for s := range l.stripes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.run(fctx, s); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(fctx); err != nil {
		return err
	}
	if held, _ := h.state(); held != n || int(st.checked.Load()) != len(m.Root.Pieces) {
		return fmt.Errorf("root image: %d of %d pieces, %d of %d manifest pieces verified", held, n, st.checked.Load(), len(m.Root.Pieces))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imgctl-agent: root image verified (%d manifest pieces, passed on in %d pieces, %d stripes)\n",
		len(m.Root.Pieces), n, len(l.stripes))
	// Children trail by about a piece: keep serving while the coordinator
	// says any still fetch from this node, within the linger bound.
	c.lingerServe(ctx, h, o.linger)
	stopServing()
	c.leave(context.WithoutCancel(ctx))
	return nil
}

// stripeFetch is what the stripes of one fetch share.
type stripeFetch struct {
	rootURL    string
	m          *manifest
	f          *os.File
	h          *holder
	l          layout
	o          treeOpts
	c          *coordinator
	kick       chan<- struct{}
	retries    int
	backoff    time.Duration
	serverErrs atomic.Int32
	checked    atomic.Int32 // manifest pieces verified
}

// run fetches stripe s to its end.
func (st *stripeFetch) run(ctx context.Context, s int) error {
	a, b := st.l.stripes[s][0], st.l.stripes[s][1]
	buf := make([]byte, st.l.pieceSize)
	var failed []string
	var bad []badPiece
	for held := st.h.run(a, b); a+held < b; held = st.h.run(a, b) {
		src, err := st.c.join(ctx, st.h, s, held, failed, bad)
		failed, bad = nil, nil
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
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
			name, u = serverSource, st.rootURL
		}
		st.c.cur.set(s, name)
		lastGain := time.Now()
		for a+held < b {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			from := int64(a+held) * st.l.pieceSize
			to := min(int64(b)*st.l.pieceSize, st.h.size) - 1
			err := streamStalling(ctx, u, from, to, st.l.pieceSize, buf, st.o.stall, func(piece []byte) error {
				i := a + held
				if sum := sha256.Sum256(piece); hex.EncodeToString(sum[:]) != st.l.pieces[i] {
					return errMismatch{fmt.Sprintf("piece %d from %s: sha256 %s, piece table says %s", i, name, hex.EncodeToString(sum[:]), st.l.pieces[i])}
				}
				if _, err := st.f.WriteAt(piece, int64(i)*st.l.pieceSize); err != nil {
					return errFatal{err}
				}
				if (i+1)%st.l.perPiece == 0 || i+1 == len(st.l.pieces) {
					if err := st.checkManifestPiece(i / st.l.perPiece); err != nil {
						return errFatal{err}
					}
				}
				st.h.addPiece(i, name)
				held++
				lastGain = time.Now()
				select {
				case st.kick <- struct{}{}:
				default:
				}
				return nil
			})
			if err == nil {
				break
			}
			if fe := (errFatal{}); errors.As(err, &fe) {
				return fe.err
			}
			if (errors.Is(err, errBehind) || errors.Is(err, errShort)) && name != serverSource && time.Since(lastGain) < 4*st.o.stall {
				continue // the peer is alive and waits for the next piece itself
			}
			fmt.Fprintln(os.Stderr, "imgctl-agent:", err)
			if name == serverSource {
				if n := st.serverErrs.Add(1); int(n) >= st.retries {
					return fmt.Errorf("root image %s: %w", st.rootURL, err)
				} else {
					sleep(ctx, time.Duration(n)*st.backoff)
				}
				failed = []string{serverSource}
			} else if errors.As(err, new(errMismatch)) {
				bad = []badPiece{{Peer: name, Piece: a + held}}
			} else {
				failed = []string{name}
			}
			break
		}
	}
	return nil
}

// errFatal ends the whole fetch (a local write error, or a piece table the
// manifest contradicts).
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }

// checkManifestPiece verifies manifest piece j, now written in full,
// against the manifest: the finer table came from the boot service, the
// manifest is what the image is.
func (st *stripeFetch) checkManifestPiece(j int) error {
	off := int64(j) * st.m.Root.PieceSize
	n := min(st.m.Root.PieceSize, st.h.size-off)
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(st.f, off, n)); err != nil {
		return fmt.Errorf("read back manifest piece %d: %w", j, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != st.m.Root.Pieces[j] {
		return errMismatch{fmt.Sprintf("manifest piece %d: sha256 %s, manifest says %s (the piece table does not match the manifest)", j, got, st.m.Root.Pieces[j])}
	}
	st.checked.Add(1)
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
