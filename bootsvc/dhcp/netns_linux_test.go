package dhcp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// segment is a server namespace and a client namespace joined by a veth pair:
// server 10.41.0.1/24, client 10.41.0.2/24 plus 10.41.2.1 (a relay address,
// routed from the server through the client).
type segment struct {
	srv, cli       *netns.NS
	srvIf, cliIf   string
	serverCleanups []func()
}

func newSegment(t *testing.T, ctx context.Context) *segment {
	t.Helper()
	testenv.RequireRoot(t)
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "dh", ServerAddr: "10.41.0.1/24", ClientAddr: "10.41.0.2/24"})
	seg := &segment{srv: p.Server, cli: p.Client, srvIf: p.ServerIf, cliIf: p.ClientIf}
	for _, step := range []error{
		seg.cli.IP(ctx, "addr", "add", "10.41.2.1/32", "dev", "lo"),
		seg.srv.IP(ctx, "route", "add", "10.41.2.0/24", "via", "10.41.0.2"),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return seg
}

// serve starts a server in the server namespace; it stops in t.Cleanup.
func (seg *segment) serve(t *testing.T, mutate func(*Config)) (*recorder, func()) {
	t.Helper()
	s, mem, rec := testServer(t, func(c *Config) {
		c.Interface = seg.srvIf
		if mutate != nil {
			mutate(c)
		}
	})
	_ = mem
	var conn net.PacketConn
	if err := seg.srv.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn(seg.srvIf, &net.UDPAddr{Port: 67})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.deps.Conn = conn
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return rec, stop
}

const envScript = "#!/bin/sh\ncase \"$1$reason\" in bound|BOUND) env > \"$OUTFILE\";; esac\nexit 0\n"

// udhcpc runs busybox udhcpc once with mac on the client veth and returns the
// variables its script saw on "bound" (nil if it got no lease).
func (seg *segment) udhcpc(t *testing.T, ctx context.Context, mac string, extra ...string) map[string]string {
	t.Helper()
	if err := seg.cli.IP(ctx, "link", "set", seg.cliIf, "address", mac); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script, out := filepath.Join(dir, "script"), filepath.Join(dir, "env")
	os.WriteFile(script, []byte(envScript), 0o755)
	args := append([]string{"busybox", "udhcpc", "-f", "-q", "-n", "-i", seg.cliIf, "-t", "3", "-T", "1", "-s", script}, extra...)
	cmd := seg.cli.Command(ctx, args...)
	cmd.Env = append(os.Environ(), "OUTFILE="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("udhcpc: %v: %s", err, b)
		return nil
	}
	return readEnv(t, out)
}

func readEnv(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("client script never ran: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func pick(env map[string]string, keys ...string) map[string]string {
	if env == nil {
		return nil
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = env[k]
	}
	return out
}

func TestRealClients(t *testing.T) {
	testenv.RequireCommands(t, "busybox", "ip")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seg := newSegment(t, ctx)
	rec, stop := seg.serve(t, nil)

	keys := []string{"ip", "subnet", "router", "dns", "domain", "hostname", "boot_file", "siaddr", "serverid", "lease"}
	base := map[string]string{"ip": "10.41.0.11", "subnet": "255.255.255.0", "router": "10.41.0.254", "dns": "10.41.0.53",
		"domain": "cluster.test", "hostname": "nid001", "siaddr": "10.41.0.1", "serverid": "10.41.0.1", "lease": "3600"}
	with := func(file string) map[string]string {
		m := map[string]string{"boot_file": file}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		mac   string
		extra []string
		want  map[string]string
	}{
		{"bios", "02:41:00:00:00:01", []string{"-V", "PXEClient:Arch:00000", "-x", "0x5d:0000"}, with("undionly.kpxe")},
		{"uefi x86-64", "02:41:00:00:00:01", []string{"-V", "PXEClient:Arch:00007", "-x", "0x5d:0007"}, with("ipxe.efi")},
		{"ipxe user class", "02:41:00:00:00:01", []string{"-x", "0x4d:69505845", "-x", "0x5d:0007"}, with("http://10.41.0.1:8080/ipxe?mac=${net0/mac}")},
		{"unknown mac", "02:41:00:00:00:77", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pick(seg.udhcpc(t, ctx, tc.mac, tc.extra...), keys...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("lease (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("dhclient", func(t *testing.T) {
		testenv.RequireCommands(t, "dhclient")
		if err := seg.cli.IP(ctx, "link", "set", seg.cliIf, "address", "02:41:00:00:00:03"); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		script, out := filepath.Join(dir, "script"), filepath.Join(dir, "env")
		// dhclient scrubs the environment its script sees: name the file in it.
		os.WriteFile(script, []byte(strings.ReplaceAll(envScript, "$OUTFILE", out)), 0o755)
		cmd := seg.cli.Command(ctx, "dhclient", "-4", "-1", "-d", "-sf", script, "-lf", filepath.Join(dir, "leases"),
			"-pf", filepath.Join(dir, "pid"), seg.cliIf)
		var log strings.Builder
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// -d keeps dhclient in the foreground after it binds: stop it (by PID) once bound.
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
				time.Sleep(50 * time.Millisecond) // let the script finish writing
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dhclient got no lease in 20s: %s", log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		got := pick(readEnv(t, out), "new_ip_address", "new_subnet_mask", "new_host_name", "new_filename", "new_next_server")
		want := map[string]string{"new_ip_address": "10.41.0.13", "new_subnet_mask": "255.255.0.0", "new_host_name": "nid003",
			"new_filename": "undionly.kpxe", "new_next_server": "10.41.0.1"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("dhclient lease (-want +got):\n%s", diff)
		}
	})

	t.Run("relayed", func(t *testing.T) {
		got, err := relayDiscover(seg, "02:41:00:00:00:02")
		if err != nil {
			t.Fatal(err)
		}
		if got.YourIPAddr.String() != "10.41.2.12" || got.Router()[0].String() != "10.41.2.254" || got.MessageType() != dhcpv4.MessageTypeOffer {
			t.Fatalf("relayed offer = %s", got.Summary())
		}
	})

	rec.mu.Lock()
	states := strings.Join(rec.got, " ")
	rec.mu.Unlock()
	// udhcpc as firmware (nid001) starts a boot; dhclient, an OS client
	// (nid003), is the initramfs's lease within one.
	for _, want := range []string{"nid001=dhcp", "nid003=initrd-dhcp"} {
		if !strings.Contains(states, want) {
			t.Errorf("states recorded %q, want %s", states, want)
		}
	}
	stop()

	t.Run("discovery", func(t *testing.T) {
		s, mem, _ := testServer(t, func(c *Config) { c.Interface = seg.srvIf; c.Unknown = PolicyDiscovery })
		var conn net.PacketConn
		if err := seg.srv.Do(func() (err error) {
			conn, err = server4.NewIPv4UDPConn(seg.srvIf, &net.UDPAddr{Port: 67})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s.deps.Conn = conn
		sctx, scancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		defer func() { scancel(); <-done }()
		changes := mem.Watch(ctx)
		got := pick(seg.udhcpc(t, ctx, "02:41:00:00:00:77"), "ip", "lease")
		if diff := cmp.Diff(map[string]string{"ip": "10.41.0.200", "lease": "300"}, got); diff != "" {
			t.Fatalf("pool lease (-want +got):\n%s", diff)
		}
		// The server records discoveries after it answers: wait for the write.
		n, err := mem.NodeByMAC(ctx, mustMAC("02:41:00:00:00:77"))
		for err != nil && ctx.Err() == nil {
			<-changes
			n, err = mem.NodeByMAC(ctx, mustMAC("02:41:00:00:00:77"))
		}
		ok := err == nil
		if !ok || n.Discovered.IsZero() {
			t.Fatalf("inventory did not record the discovered MAC: %+v", n)
		}
	})
}

// relayDiscover acts as a relay agent at 10.41.2.1: it sends a DISCOVER with
// giaddr set to the server and waits (bounded) for the answer on port 67.
func relayDiscover(seg *segment, mac string) (*dhcpv4.DHCPv4, error) {
	var conn *net.UDPConn
	if err := seg.cli.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP{10, 41, 2, 1}, Port: 67})
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	req, err := dhcpv4.NewDiscovery(mustMAC(mac), dhcpv4.WithGatewayIP(net.IP{10, 41, 2, 1}))
	if err != nil {
		return nil, err
	}
	req.HopCount = 1
	if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.IP{10, 41, 0, 1}, Port: 67}); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil, fmt.Errorf("no answer to the relay: %w", err)
	}
	return dhcpv4.FromBytes(buf[:n])
}
