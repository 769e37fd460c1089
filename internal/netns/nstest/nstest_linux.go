// Package nstest sets up the network that namespace integration tests share:
// a server namespace and a client namespace joined by a veth pair, removed
// again in t.Cleanup. What a test adds on top (extra addresses, routes, a MAC)
// it does itself with the netns.NS it gets back.
package nstest

import (
	"context"
	"testing"

	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/testenv"
)

// PairConfig names and addresses a pair.
//
// Tests in different packages run in parallel on one host, so each package
// keeps its own Prefix and its own 10.x subnet.
type PairConfig struct {
	// Prefix names everything, made unique by netns.UniqueName: namespaces
	// Prefix+"S" (server) and Prefix+"C" (client), veth ends Prefix+"s" and
	// Prefix+"c". Two or three characters; names are cut to 15 bytes.
	Prefix string
	// ServerAddr and ClientAddr are the veth ends' addresses in CIDR form
	// ("10.41.3.1/24"); "" leaves an end without an address.
	ServerAddr, ClientAddr string
}

// Pair is a server and a client namespace joined by a veth pair, both ends up.
type Pair struct {
	Server, Client *netns.NS
	// ServerIf and ClientIf are the veth ends inside Server and Client.
	ServerIf, ClientIf string
}

// NewPair creates the pair described by cfg, skipping t when not root and
// failing it on any error. Both namespaces (and with them the veth pair) are
// deleted in t.Cleanup, the client's first; cleanups the test registers
// afterwards (servers running in the namespaces) run before that.
func NewPair(t testing.TB, ctx context.Context, cfg PairConfig) *Pair {
	t.Helper()
	testenv.RequireRoot(t)
	p := &Pair{ServerIf: netns.UniqueName(cfg.Prefix + "s"), ClientIf: netns.UniqueName(cfg.Prefix + "c")}
	var err error
	if p.Server, err = netns.New(ctx, netns.UniqueName(cfg.Prefix+"S")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Server.Close() })
	if p.Client, err = netns.New(ctx, netns.UniqueName(cfg.Prefix+"C")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Client.Close() })
	if err := netns.Veth(ctx, p.Server, p.ServerIf, cfg.ServerAddr, p.Client, p.ClientIf, cfg.ClientAddr); err != nil {
		t.Fatal(err)
	}
	return p
}
