// Package cstore opens the containers/storage store that holds imgctl's images,
// so that the builder, the artifact flattener, publish and capture all agree on
// where images live and which driver they use.
package cstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.podman.io/storage"
	"go.podman.io/storage/types"

	"github.com/imgctl/imgctl/internal/logging"
)

// Options selects the store. Empty fields take the system defaults from
// storage.conf (root /var/lib/containers/storage), so images built by imgctl are
// visible to podman, buildah and skopeo on the same host.
type Options struct {
	GraphRoot string // image and layer storage
	RunRoot   string // locks and mount state
	Driver    string // "overlay" or "vfs"; empty: overlay, falling back to vfs
}

// StoreOptions resolves o against the system defaults for the given driver.
func (o Options) StoreOptions(driver string) (types.StoreOptions, error) {
	so, err := storage.DefaultStoreOptions()
	if err != nil {
		return so, fmt.Errorf("storage defaults: %w", err)
	}
	if o.GraphRoot != "" {
		so.GraphRoot = o.GraphRoot
	}
	if o.RunRoot != "" {
		so.RunRoot = o.RunRoot
	} else if o.GraphRoot != "" {
		// A private graph root gets a private run root, so two stores never share locks.
		so.RunRoot = o.GraphRoot + "/run"
	}
	so.GraphDriverName = driver
	if driver != "overlay" {
		so.GraphDriverOptions = nil
	}
	return so, nil
}

// Open opens the store. With no driver given it tries overlay first and falls
// back to vfs (overlay cannot work on every filesystem, e.g. on top of overlay
// without the right kernel support). The caller must Shutdown the store.
func Open(ctx context.Context, o Options, log *slog.Logger) (storage.Store, error) {
	log = logging.OrDiscard(log)
	drivers := []string{o.Driver}
	if o.Driver == "" {
		drivers = []string{"overlay", "vfs"}
	}
	var errs []error
	for _, d := range drivers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		so, err := o.StoreOptions(d)
		if err != nil {
			return nil, err
		}
		st, err := storage.GetStore(so)
		if err == nil {
			log.Debug("storage opened", "root", so.GraphRoot, "driver", st.GraphDriverName())
			return st, nil
		}
		errs = append(errs, fmt.Errorf("driver %s: %w", d, err))
	}
	return nil, fmt.Errorf("open container storage: %w", errors.Join(errs...))
}
