package store_test

import (
	"testing"

	"github.com/imgctl/imgctl/bootsvc/store"
	"github.com/imgctl/imgctl/bootsvc/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
