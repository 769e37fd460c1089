package bootspec

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/imgctl/imgctl/bootsvc/cloudinit"
	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store"
)

// TestCloudInitSeed: nodes with cloud-init data (their own or a group's)
// boot with the NoCloud seed, trailing slash kept; others, or nodes that
// disable it, without.
func TestCloudInitSeed(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	nodes := []inventory.Node{
		{Name: "n1", MACs: []string{"02:00:00:00:01:01"}, IP: "10.45.1.1", Groups: []string{"compute"}, Settings: inventory.Settings{Image: "compute"}},
		{Name: "n2", MACs: []string{"02:00:00:00:01:02"}, IP: "10.45.1.2", Settings: inventory.Settings{Image: "compute"}},
		{Name: "n3", MACs: []string{"02:00:00:00:01:03"}, IP: "10.45.1.3", Groups: []string{"compute"}, Settings: inventory.Settings{Image: "compute"}},
	}
	if err := s.Update(ctx, func(inv *inventory.Inventory) error {
		if err := inv.PutGroup("compute", inventory.Group{}); err != nil {
			return err
		}
		for _, n := range nodes {
			if err := inv.Put(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k, d := range map[cloudinit.Key]cloudinit.Data{
		{Scope: cloudinit.Group, Name: "compute"}: {UserData: "#cloud-config\nruncmd: [ls]\n"},
		{Scope: cloudinit.Node, Name: "n3"}:       {Disabled: true},
	} {
		if err := s.PutCloudInit(ctx, k, d); err != nil {
			t.Fatal(err)
		}
	}
	tokens := nodetoken.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r := New(Config{PublicURL: "http://10.45.0.1:8080/"}, s, artifacts(t), nil, tokens).WithCloudInit(s)
	for i, want := range []bool{true, false, false} {
		n := nodes[i]
		mac, _ := net.ParseMAC(n.MACs[0])
		spec, err := r.Resolve(ctx, Client{MAC: mac, IP: netip.MustParseAddr(n.IP)})
		if err != nil {
			t.Fatal(err)
		}
		seed := "ds=nocloud-net;s=http://10.45.0.1:8080/cloud-init/" + tokens.Make(n.Name, n.MACs[0], n.IP) + "/"
		got := strings.Contains(" "+spec.Cmdline()+" ", " "+seed+" ")
		if got != want {
			t.Errorf("%s: seed on the command line = %v, want %v\n%s", n.Name, got, want, spec.Cmdline())
		}
		if strings.Count(spec.Cmdline(), "ds=") > 1 {
			t.Errorf("%s: more than one ds= argument", n.Name)
		}
	}
}
