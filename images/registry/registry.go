// Package registry publishes imgctl images and their boot artifacts to an OCI
// registry and pulls them back into another machine's container storage and
// artifact store. The image travels as an ordinary OCI image
// (containers/image); the artifact set travels as an OCI artifact linked to the
// image by the subject field and by a tag convention (see docs/registry.md), and
// may carry an ed25519 signature.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.podman.io/common/pkg/retry"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/logging"
)

// Options configure a Client.
type Options struct {
	// Storage is the containers/storage store images are pushed from and
	// pulled into. The caller owns it (and shuts it down).
	Storage storage.Store
	// Artifacts is the artifact store sets are published from and installed into.
	Artifacts *images.Store
	// TLSVerify checks registry certificates and refuses plain HTTP. Lab
	// registries on loopback need it false.
	TLSVerify bool
	// AuthFile is the containers auth file (auth.json). Empty: $REGISTRY_AUTH_FILE,
	// then containers/image's defaults (${XDG_RUNTIME_DIR}/containers/auth.json,
	// ~/.docker/config.json, ...).
	AuthFile string
	// CacheDir holds containers/image's blob-info cache, which remembers the
	// compressed digest of each pushed layer so a second publish skips it.
	// Empty: containers/image's default.
	CacheDir string
	// Progress receives progress bars for every blob; nil means none.
	Progress io.Writer
	// Retries is how many times a transient registry failure is retried
	// (default 3); RetryDelay the first delay, doubled each time (default 1s).
	Retries    int
	RetryDelay time.Duration
	// Log receives one line per step; nil discards.
	Log *slog.Logger
}

// Client publishes and pulls. It holds no open resources of its own.
type Client struct {
	opts Options
	log  *slog.Logger
	// trustSets skips the check of a set against its manifest before
	// publish; only tests set it, to put lying sets in a registry.
	trustSets bool
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	return &Client{opts: opts, log: logging.OrDiscard(opts.Log)}
}

// systemContext is what containers/image needs to reach the registry: TLS
// choice, credentials and the blob-info cache.
func (c *Client) systemContext() *types.SystemContext {
	sys := &types.SystemContext{
		DockerInsecureSkipTLSVerify: types.NewOptionalBool(!c.opts.TLSVerify),
		AuthFilePath:                c.opts.AuthFile,
		BlobInfoCacheDir:            c.opts.CacheDir,
		DockerRegistryUserAgent:     "imgctl",
	}
	if sys.AuthFilePath == "" {
		sys.AuthFilePath = os.Getenv("REGISTRY_AUTH_FILE")
	}
	if c.opts.CacheDir != "" {
		// containers/image fails when its cache directory is missing.
		_ = os.MkdirAll(c.opts.CacheDir, 0o700)
	}
	return sys
}

// policyContext accepts any image: trust is established by imgctl's own
// signature (sign.go) and by digest checks, not by containers' policy.json.
func policyContext() (*signature.PolicyContext, error) {
	return signature.NewPolicyContext(&signature.Policy{
		Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()},
	})
}

// withRetry runs op, retrying transient failures (network errors, 5xx, 429)
// with exponential backoff. Permanent errors return at once.
func (c *Client) withRetry(ctx context.Context, what string, op func() error) error {
	delay := c.opts.RetryDelay
	var err error
	for attempt := 0; ; attempt++ {
		err = op()
		if err == nil || ctx.Err() != nil || attempt >= c.opts.Retries || !retryable(err) {
			break
		}
		c.log.Warn("retrying after transient error", "step", what, "attempt", attempt+1, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, errors.Join(err, ctx.Err()))
		case <-time.After(delay):
		}
		delay *= 2
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// retryable reports whether err is worth another attempt. Digest mismatches
// and signature failures never are.
func retryable(err error) bool {
	var ve *VerifyError
	if errors.As(err, &ve) || errors.Is(err, ErrSignature) || errors.Is(err, ErrNoArtifacts) {
		return false
	}
	return retry.IsErrorRetryable(err)
}
