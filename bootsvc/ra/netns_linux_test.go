package ra

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestRealClient: Debian's rdisc6 in a second namespace solicits and must get
// our advertisement: from our link-local address, lifetime 0, no M/O flag,
// no prefix.
func TestRealClient(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "rdisc6", "ip")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "ra", ServerAddr: "10.41.9.1/24", ClientAddr: "10.41.9.2/24"})
	srv, cli, srvIf, cliIf := p.Server, p.Client, p.ServerIf, p.ClientIf
	if err := srv.IP(ctx, "link", "set", srvIf, "address", "02:41:09:00:00:01"); err != nil {
		t.Fatal(err)
	}

	s, err := New(Config{Enabled: true, Interface: srvIf, Interval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	// The raw socket and the interface lookup happen on a thread in srv.
	go func() { done <- srv.Do(func() error { return s.Run(runCtx) }) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ra server: %v", err)
		}
	})

	// Link-local addresses need their duplicate address detection (~1 s):
	// rdisc6 retries until then.
	var out string
	for i := 0; i < 10; i++ {
		b, _ := cli.Command(ctx, "rdisc6", "-1", "-n", "-w", "1500", "-r", "2", cliIf).CombinedOutput()
		out = string(b)
		if strings.Contains(out, "Router lifetime") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, want := range []string{
		"Stateful address conf.    :           No",
		"Stateful other conf.      :           No",
		"Router lifetime           :            0",
		"Source link-layer address: 02:41:09:00:00:01",
		"from fe80::",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rdisc6 output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Prefix") {
		t.Errorf("advertisement carries a prefix:\n%s", out)
	}
}
