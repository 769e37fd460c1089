package main

import (
	"context"
	"errors"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
)

// openBootStore opens the boot-service store of the state directory (the file
// backend) for one command. The caller closes it.
func (g *globals) openBootStore(ctx context.Context) (*filestore.Store, error) {
	return filestore.Open(ctx, filestore.Options{StateDir: g.stateDir, Inventory: g.inventoryPath(), Log: g.logger()})
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
