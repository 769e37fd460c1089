package test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// TestServeEndToEnd runs `imgctl serve` with its embedded defaults in a
// namespace, boots a client through DHCP (udhcpc), TFTP (tftp-hpa) and the
// HTTP script URL it was handed, then stops the server with SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "busybox", "tftp", "ip", "curl")
	bin := imgctl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "sv", ServerAddr: "10.41.5.1/24", ClientAddr: "10.41.5.2/24"})
	srv, cli, cliIf := p.Server, p.Client, p.ClientIf
	state := t.TempDir()
	for _, args := range [][]string{
		{"group", "add", "compute", "--image", "compute-base", "--domain", "e2e.test"},
		{"node", "add", "nid[001-002]", "--mac", "02:41:05:00:00:01,02:41:05:00:00:02", "--ip", "10.41.5.[11-12]", "--group", "compute"},
	} {
		if out, err := exec.Command(bin, append([]string{"--state", state, "-q"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("imgctl %v: %v: %s", args, err, out)
		}
	}

	// The server, with defaults only: everything auto-detected in its namespace.
	logPath := filepath.Join(state, "serve.log")
	logf, _ := os.Create(logPath)
	defer logf.Close()
	serve := srv.Command(context.Background(), bin, "--state", state, "serve")
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		serve.Process.Kill() // no-op once it has exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log:\n%s", b)
		}
	})
	waitListening(t, ctx, cli, "http://10.41.5.1:8080/metrics")

	// DHCP: udhcpc as iPXE would identify itself gets the script URL.
	if err := cli.IP(ctx, "link", "set", cliIf, "address", "02:41:05:00:00:01"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script, envOut := filepath.Join(dir, "script"), filepath.Join(dir, "env")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+envOut+"\nexit 0\n"), 0o755)
	if out, err := cli.Command(ctx, "busybox", "udhcpc", "-f", "-q", "-n", "-i", cliIf, "-t", "5", "-T", "1", "-s", script,
		"-x", "0x4d:69505845").CombinedOutput(); err != nil {
		t.Fatalf("udhcpc: %v: %s", err, out)
	}
	env := readVars(t, envOut)
	if env["ip"] != "10.41.5.11" || env["hostname"] != "nid001" || env["domain"] != "e2e.test" ||
		env["boot_file"] != "http://10.41.5.1:8080/ipxe?mac=${net0/mac}" {
		t.Fatalf("lease = %v", env)
	}

	// TFTP: the iPXE binary from Debian's ipxe package.
	got := filepath.Join(dir, "undionly.kpxe")
	if out, err := cli.Command(ctx, "tftp", "-m", "binary", "10.41.5.1", "-c", "get", "undionly.kpxe", got).CombinedOutput(); err != nil {
		t.Fatalf("tftp: %v: %s", err, out)
	}
	want, _ := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if b, _ := os.ReadFile(got); len(want) == 0 || string(b) != string(want) {
		t.Fatalf("tftp got %d bytes, want %d", len(b), len(want))
	}

	// The DHCP ACK was recorded as the node's boot state.
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve still running 15s after SIGTERM")
	}
	out, err := exec.Command(bin, "--state", state, "node", "ls", "nid001", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		Name  string `json:"name"`
		State *struct {
			State string `json:"state"`
		} `json:"state"`
	}
	if err := json.Unmarshal(out, &nodes); err != nil || len(nodes) != 1 || nodes[0].State == nil || nodes[0].State.State != "dhcp" {
		t.Fatalf("node ls = %s (%v), want nid001 in state dhcp", out, err)
	}
}

// waitListening polls url from inside ns until it answers (bounded by ctx).
func waitListening(t *testing.T, ctx context.Context, ns *netns.NS, url string) {
	t.Helper()
	for {
		// curl runs in the namespace; a Go client's dialer may run on a thread outside it.
		if err := ns.Command(ctx, "curl", "-s", "-o", "/dev/null", "--max-time", "1", url).Run(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered", url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readVars(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("DHCP client script never ran: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}
