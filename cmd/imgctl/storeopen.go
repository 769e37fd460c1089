package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore"
)

// openBootStore opens the boot-service store for one command: PostgreSQL
// when --store names one, else the state directory's file backend. The
// caller closes it.
func (g *globals) openBootStore(ctx context.Context) (store.Store, error) {
	return g.openStoreAt(ctx, g.store, false)
}

// openStoreAt opens the store at url ("" = the file backend); owner makes
// this process the file backend's boot-state writer (imgctl serve).
func (g *globals) openStoreAt(ctx context.Context, url string, owner bool) (store.Store, error) {
	switch {
	case url == "":
		return filestore.Open(ctx, filestore.Options{StateDir: g.stateDir, Inventory: g.inventoryPath(), Owner: owner, Log: g.logger()})
	case pgstore.IsURL(url):
		return pgstore.Open(ctx, pgstore.Options{URL: url, Log: g.logger()})
	default:
		return nil, &usageError{msg: fmt.Sprintf("store %q: want postgres://… (or nothing, for the file store in --state)", pgstore.MaskURL(url))}
	}
}

// withStore runs fn on the store and closes it.
func (g *globals) withStore(ctx context.Context, fn func(store.Store) error) error {
	s, err := g.openBootStore(ctx)
	if err != nil {
		return err
	}
	return errors.Join(fn(s), s.Close())
}

// updateInventory is a read-modify-write of the inventory through the store.
func (g *globals) updateInventory(ctx context.Context, fn func(*inventory.Inventory) error) error {
	return g.withStore(ctx, func(s store.Store) error { return s.Update(ctx, fn) })
}

// loadInventory returns the inventory through the store.
func (g *globals) loadInventory(ctx context.Context) (inv *inventory.Inventory, err error) {
	err = g.withStore(ctx, func(s store.Store) error {
		inv, err = s.Snapshot(ctx)
		return err
	})
	return inv, err
}
