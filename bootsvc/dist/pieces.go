package dist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"

	"github.com/imgctl/imgctl/images"
)

// Artifacts finds artifact sets; *images.Store satisfies it.
type Artifacts interface {
	Get(name, digest string) (*images.Entry, error)
}

// PieceTable is the finer piece table nodes verify and pass on in tree
// mode: a sha256 per PieceSize bytes of the root image. The boot service
// derives it from the image only after every manifest piece checked out,
// so it is exactly as trustworthy as the manifest (which comes from the
// same server); agents verify each manifest piece again once its
// sub-pieces are in.
type PieceTable struct {
	ImageDigest string   `json:"image_digest"`
	PieceSize   int64    `json:"piece_size"`
	Pieces      []string `json:"pieces"`
	Stripes     int      `json:"stripes"` // how many stripes the coordinator schedules
}

var (
	tableNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	tableDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// tables caches piece tables by set directory: hashing a root image takes
// a second or more, and every node of a storm asks at once.
type tables struct {
	mu   sync.Mutex
	sets map[string]*tableEntry
}

type tableEntry struct {
	once sync.Once
	t    *PieceTable
	err  error
}

// ServePieceTables lets the API answer GET …/pieces?image=NAME&digest=HEX
// from arts; without it that route answers 404 and agents fall back to the
// manifest's pieces.
func (a *API) ServePieceTables(arts Artifacts) *API {
	a.arts, a.tables = arts, &tables{sets: map[string]*tableEntry{}}
	return a
}

func (a *API) handlePieces(w http.ResponseWriter, r *http.Request) {
	name, digest := r.URL.Query().Get("image"), r.URL.Query().Get("digest")
	if a.arts == nil {
		http.Error(w, "no piece tables here", http.StatusNotFound)
		return
	}
	if !tableNameRE.MatchString(name) || !tableDigestRE.MatchString(digest) {
		http.Error(w, "want image=NAME&digest=HEX", http.StatusBadRequest)
		return
	}
	e, err := a.arts.Get(name, "sha256:"+digest)
	if err != nil {
		http.Error(w, "no such artifact set", http.StatusNotFound)
		return
	}
	a.tables.mu.Lock()
	te := a.tables.sets[e.Dir]
	if te == nil {
		te = &tableEntry{}
		a.tables.sets[e.Dir] = te
	}
	a.tables.mu.Unlock()
	te.once.Do(func() {
		// Detached from the request: the table serves every node asking.
		te.t, te.err = pieceTable(context.WithoutCancel(r.Context()), e, a.c.cfg.SubPiece)
		if te.t != nil {
			te.t.Stripes = a.c.cfg.Stripes
		}
	})
	if te.err != nil {
		a.log.Error("piece table", "image", name, "digest", digest, "err", te.err)
		a.tables.mu.Lock()
		delete(a.tables.sets, e.Dir) // a later request tries again
		a.tables.mu.Unlock()
		http.Error(w, "piece table: "+te.err.Error(), http.StatusServiceUnavailable)
		return
	}
	reply(w, te.t)
}

// pieceTable hashes e's root image in sub-pieces, checking every manifest
// piece on the way; sub must divide the manifest's piece size.
func pieceTable(ctx context.Context, e *images.Entry, sub int64) (*PieceTable, error) {
	m := e.Manifest
	if sub > m.Root.PieceSize || m.Root.PieceSize%sub != 0 {
		sub = m.Root.PieceSize // the manifest's own pieces then
	}
	f, a, err := e.Open(images.RootFS)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if want := (a.Size + m.Root.PieceSize - 1) / m.Root.PieceSize; int64(len(m.Root.Pieces)) != want {
		return nil, fmt.Errorf("root image of %d bytes: manifest has %d pieces of %d, want %d", a.Size, len(m.Root.Pieces), m.Root.PieceSize, want)
	}
	t := &PieceTable{ImageDigest: m.ImageDigest, PieceSize: sub}
	buf := make([]byte, sub)
	for i, want := range m.Root.Pieces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		whole := sha256.New()
		end := min(int64(i+1)*m.Root.PieceSize, a.Size)
		for off := int64(i) * m.Root.PieceSize; off < end; off += sub {
			b := buf[:min(sub, end-off)]
			if _, err := io.ReadFull(f, b); err != nil {
				return nil, fmt.Errorf("read root image: %w", err)
			}
			whole.Write(b)
			s := sha256.Sum256(b)
			t.Pieces = append(t.Pieces, hex.EncodeToString(s[:]))
		}
		if got := hex.EncodeToString(whole.Sum(nil)); got != want {
			return nil, fmt.Errorf("root image piece %d: sha256 %s, manifest says %s", i, got, want)
		}
	}
	return t, nil
}
