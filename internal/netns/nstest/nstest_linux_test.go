package nstest

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

func TestNewPair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var names []string
	t.Run("pair", func(t *testing.T) {
		p := NewPair(t, ctx, PairConfig{Prefix: "nt", ServerAddr: "10.231.1.1/24", ClientAddr: "10.231.1.2/24"})
		names = []string{p.Server.Name, p.Client.Name}
		var ln net.Listener
		if err := p.Server.Do(func() (err error) { ln, err = net.Listen("tcp", "10.231.1.1:0"); return }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if err := p.Client.Do(func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(10, 231, 1, 2)}, Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			t.Fatalf("client to server over the veth: %v", err)
		}
		if err := p.Client.IP(ctx, "link", "show", p.ClientIf); err != nil {
			t.Errorf("client end: %v", err)
		}
	})
	// Subtest cleanups have run: the namespaces are gone.
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s still there after cleanup (%v)", n, err)
		}
	}
}
