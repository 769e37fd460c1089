package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// manifest is the part of images.Manifest the agent needs (the agent stays
// free of imgctl's other packages to remain small and static).
type manifest struct {
	Name        string `json:"name"`
	ImageDigest string `json:"image_digest"`
	Artifacts   map[string]struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"artifacts"`
	Root struct {
		PieceSize int64    `json:"piece_size"`
		Pieces    []string `json:"pieces"`
	} `json:"root"`
}

// errMismatch marks content that does not match the manifest: retrying the
// same server is pointless once it has served bad bytes several times.
type errMismatch struct{ msg string }

func (e errMismatch) Error() string { return e.msg }

func runFetch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	manifestURL := fs.String("manifest", "", "artifact manifest URL")
	url := fs.String("url", "", "root image URL")
	out := fs.String("out", "", "file to write")
	retries := fs.Int("retries", 5, "attempts per piece")
	dist := fs.String("dist", "http", "http, tree (fetch from the sources the coordinator names) or multicast (imgctl.dist)")
	tf := registerTreeFlags(fs)
	mf := registerMulticastFlags(fs)
	linger := fs.Duration("linger", 2*time.Minute, "tree: after finishing, keep serving children still fetching for at most this long")
	if err := fs.Parse(args); err != nil {
		return usageErr(err.Error())
	}
	if *manifestURL == "" || *url == "" || *out == "" {
		return usageErr("fetch needs --manifest, --url and --out")
	}
	mc, err := mf.opts(*dist, tf)
	if err != nil {
		return err
	}
	var tree *treeOpts
	if mc == nil {
		if tree, err = tf.opts(*dist, *linger); err != nil {
			return err
		}
	}
	m, err := getManifest(ctx, *manifestURL, *retries)
	if err != nil {
		return err
	}
	start := time.Now()
	switch {
	case mc != nil:
		err = fetchMulticast(ctx, *url, m, *out, *mc, *retries)
	case tree != nil:
		err = fetchTree(ctx, *url, m, *out, *tree, *retries, 2*time.Second)
	default:
		err = fetchVerifiedRetry(ctx, *url, m, *out, *retries, 2*time.Second)
	}
	if err != nil {
		return err
	}
	fmt.Printf("fetched %d bytes in %.1fs, sha256 verified\n", m.Artifacts["rootfs"].Size, time.Since(start).Seconds())
	return nil
}

func getManifest(ctx context.Context, url string, retries int) (*manifest, error) {
	var lastErr error
	for i := 0; i < retries; i++ {
		if i > 0 {
			sleep(ctx, time.Duration(i)*2*time.Second)
		}
		body, err := get(ctx, url, -1, -1)
		if err != nil {
			lastErr = err
			continue
		}
		var m manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", url, err)
		}
		if m.Root.PieceSize <= 0 || m.Artifacts["rootfs"].SHA256 == "" {
			return nil, fmt.Errorf("manifest %s: no root image pieces", url)
		}
		// Every piece is checked against this table, so the table must cover
		// the image exactly: then verified pieces are the image, byte for
		// byte, without hashing it a second time as a whole.
		size := m.Artifacts["rootfs"].Size
		if want := piecesFor(size, m.Root.PieceSize); size <= 0 || int64(len(m.Root.Pieces)) != want {
			return nil, fmt.Errorf("manifest %s: %d root pieces of %d bytes for a root image of %d bytes, want %d",
				url, len(m.Root.Pieces), m.Root.PieceSize, size, want)
		}
		return &m, nil
	}
	return nil, fmt.Errorf("manifest %s: %w", url, lastErr)
}

// piecesFor is how many pieces of pieceSize bytes an image of size bytes is
// cut into: what a piece table must hold to cover the image exactly.
func piecesFor(size, pieceSize int64) int64 { return (size + pieceSize - 1) / pieceSize }

// fetchVerifiedRetry downloads the root image piece by piece with Range requests,
// verifying each piece before writing it, so a retry resumes at the first
// unverified piece instead of starting over. Each byte is hashed once: the
// piece table covers the image (getManifest checks it), so a second sha256
// over the whole file would double the initramfs's hashing and prove
// nothing more.
// backoff grows linearly per attempt (backoff, 2×backoff, …).
func fetchVerifiedRetry(ctx context.Context, url string, m *manifest, out string, retries int, backoff time.Duration) error {
	size := m.Artifacts["rootfs"].Size
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for i, want := range m.Root.Pieces {
		off := int64(i) * m.Root.PieceSize
		end := min(off+m.Root.PieceSize, size) - 1
		var piece []byte
		var lastErr error
		for attempt := 0; attempt < retries; attempt++ {
			if attempt > 0 {
				sleep(ctx, time.Duration(attempt)*backoff)
			}
			piece, lastErr = get(ctx, url, off, end)
			if lastErr == nil {
				sum := sha256.Sum256(piece)
				if got := hex.EncodeToString(sum[:]); got != want {
					lastErr = errMismatch{fmt.Sprintf("piece %d: sha256 %s, manifest says %s", i, got, want)}
				}
			}
			if lastErr == nil || ctx.Err() != nil {
				break
			}
		}
		if lastErr != nil {
			return fmt.Errorf("root image %s: %w", url, lastErr)
		}
		if _, err := f.Write(piece); err != nil {
			return err
		}
	}
	return f.Sync()
}

// get fetches url, or bytes [from, to] of it when from >= 0.
func get(ctx context.Context, url string, from, to int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if from >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		want = http.StatusPartialContent
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
