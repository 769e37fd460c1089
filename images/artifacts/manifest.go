package artifacts

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/atomicfile"
)

// writeManifest hashes the staged artifacts and writes manifest.json last.
func writeManifest(ctx context.Context, stage string, src images.Source, kver string, boot images.BootSpec, format, comp, rootFile string, pieceSize int64) (*images.Manifest, error) {
	if pieceSize <= 0 {
		pieceSize = images.DefaultPieceSize
	}
	if comp == "" {
		comp = map[string]string{"squashfs": "zstd", "erofs": "lz4hc"}[format]
	}
	m := &images.Manifest{
		Version:       images.ManifestVersion,
		Name:          src.Name(),
		ImageRef:      src.Ref(),
		ImageDigest:   src.Digest(),
		KernelVersion: kver,
		Cmdline:       boot.Cmdline,
		Created:       time.Now().UTC(),
		Artifacts:     map[string]images.Artifact{},
		Root:          images.RootImage{Format: format, Compression: comp, PieceSize: pieceSize},
		Labels:        src.Labels(),
	}
	for kind, file := range map[string]string{images.Kernel: KernelFile, images.Initramfs: InitramfsFile, images.RootFS: rootFile} {
		f, err := os.Open(filepath.Join(stage, file))
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		pieces, sum, err := images.HashPieces(ctx, f, pieceSize)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", file, err)
		}
		m.Artifacts[kind] = images.Artifact{File: file, Size: st.Size(), SHA256: sum}
		if kind == images.RootFS {
			m.Root.Pieces = pieces
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, images.ManifestFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}
