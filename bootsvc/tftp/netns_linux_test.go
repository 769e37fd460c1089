package tftp

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgctl/imgctl/internal/netns"
	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

// pair is a server namespace (10.41.3.1) and a client namespace (10.41.3.2).
type pair struct{ srv, cli *netns.NS }

func newPair(t testing.TB, ctx context.Context, subnet string) *pair {
	t.Helper()
	testenv.RequireRoot(t)
	np := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "tf", ServerAddr: subnet + ".1/24", ClientAddr: subnet + ".2/24"})
	return &pair{srv: np.Server, cli: np.Client}
}

// transfers collects what the server reports.
type transfers struct {
	mu  sync.Mutex
	got []Transfer
}

func (r *transfers) add(t Transfer) { r.mu.Lock(); r.got = append(r.got, t); r.mu.Unlock() }

func (r *transfers) find(file string) (Transfer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.got {
		if t.File == file {
			return t, true
		}
	}
	return Transfer{}, false
}

// serveIn runs a server with cfg in ns on addr:69; stopped in t.Cleanup.
func serveIn(t testing.TB, ns *netns.NS, addr string, cfg Config, deps Deps) {
	t.Helper()
	var conn net.PacketConn
	if err := ns.Do(func() (err error) { conn, err = net.ListenPacket("udp4", addr+":69"); return }); err != nil {
		t.Fatal(err)
	}
	deps.Conn = conn
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Run on a thread inside ns: the per-transfer sockets open there too.
	go func() { done <- ns.Do(func() error { return s.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tftp server: %v", err)
		}
	})
}

func TestRealClients(t *testing.T) {
	testenv.RequireCommands(t, "tftp", "curl")
	ipxe := Defaults().IPXEDir
	want, err := os.ReadFile(filepath.Join(ipxe, "undionly.kpxe"))
	if err != nil {
		t.Skipf("needs Debian's ipxe package: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newPair(t, ctx, "10.41.3")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("outside the root"), 0o600)
	os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello from the root\n"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "escape"))
	cfg := Defaults()
	cfg.Root = root
	rec := &transfers{}
	reg := prometheus.NewRegistry()
	serveIn(t, p.srv, "10.41.3.1", cfg, Deps{Observe: rec.add, Registry: reg})
	defer t.Run("metrics count what was transferred", func(t *testing.T) {
		ok, failed := 0, 0
		rec.mu.Lock()
		for _, tr := range rec.got {
			if tr.Err == nil {
				ok++
			} else {
				failed++
			}
		}
		rec.mu.Unlock()
		got := map[string]float64{}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				key := f.GetName()
				for _, l := range m.GetLabel() {
					key += " " + l.GetValue()
				}
				got[key] = m.GetCounter().GetValue()
			}
		}
		if got["imgctl_tftp_transfers_total ok"] != float64(ok) || got["imgctl_tftp_transfers_total failed"] != float64(failed) || ok < 3 {
			t.Errorf("transfers %v, want ok %d and failed %d as the transfers observed", got, ok, failed)
		}
		if got["imgctl_tftp_bytes_total"] < float64(3*len(want)) {
			t.Errorf("bytes %v, want at least three iPXE binaries (%d bytes)", got["imgctl_tftp_bytes_total"], 3*len(want))
		}
	})

	tftpGet := func(t *testing.T, name string) ([]byte, string) {
		out := filepath.Join(t.TempDir(), "out")
		cmd := p.cli.Command(ctx, "tftp", "-m", "binary", "10.41.3.1", "-c", "get", name, out)
		msg, _ := cmd.CombinedOutput()
		b, _ := os.ReadFile(out)
		return b, string(msg)
	}
	t.Run("ipxe binary with tftp-hpa", func(t *testing.T) {
		got, msg := tftpGet(t, "undionly.kpxe")
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d: %s", len(got), len(want), msg)
		}
	})
	t.Run("root file wins, leading slash", func(t *testing.T) {
		if got, msg := tftpGet(t, "/hello.txt"); string(got) != "hello from the root\n" {
			t.Fatalf("got %q: %s", got, msg)
		}
	})
	t.Run("blksize 1468 with curl", func(t *testing.T) {
		for _, bs := range []string{"1468", "65464"} { // the huge one is capped to 1468
			out := filepath.Join(t.TempDir(), "out")
			b, err := p.cli.Command(ctx, "curl", "-sS", "--max-time", "20", "--tftp-blksize", bs, "-o", out, "tftp://10.41.3.1/undionly.kpxe").CombinedOutput()
			if err != nil {
				t.Fatalf("curl blksize %s: %v: %s", bs, err, b)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Fatalf("blksize %s: got %d bytes, want %d", bs, len(got), len(want))
			}
		}
		// The server reports what it negotiated.
		deadline := time.Now().Add(5 * time.Second)
		for {
			rec.mu.Lock()
			var sizes []int
			tsizeOK := true
			for i, tr := range rec.got {
				if tr.File == "undionly.kpxe" && tr.Err == nil {
					sizes = append(sizes, tr.BlockSize)
					// curl asks for tsize (RFC 2349); tftp-hpa (the first) does not.
					tsizeOK = tsizeOK && (i == 0 || tr.TSize == int64(len(want)))
				}
			}
			if !tsizeOK {
				rec.mu.Unlock()
				t.Fatalf("tsize not announced as %d: %+v", len(want), rec.got)
			}
			rec.mu.Unlock()
			if len(sizes) >= 3 && sizes[1] == 1468 && sizes[2] == 1468 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("negotiated block sizes %v, want [512 1468 1468]", sizes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	for _, name := range []string{"../secret", "escape", "root/../../secret", "nonexistent"} {
		t.Run("refused "+name, func(t *testing.T) {
			got, msg := tftpGet(t, name)
			if len(got) > 0 || !strings.Contains(msg, "Error code") {
				t.Fatalf("got %q, message %q; want a TFTP error and no data", got, msg)
			}
		})
	}
	// Raw requests a client library would not send: each must get a TFTP
	// ERROR (opcode 5) or nothing, never data, and the server must live on.
	for _, tc := range []struct {
		name, pkt string
		wantError bool // an ERROR must come back (else: ERROR or silence)
	}{
		{"mail mode", "\x00\x01hello.txt\x00mail\x00", true},
		{"unknown mode", "\x00\x01hello.txt\x00bogus\x00", true},
		{"no mode", "\x00\x01hello.txt\x00", true},
		{"write with bad mode", "\x00\x02upload\x00mail\x00", true},
		{"unknown opcode", "\x00\x09hello.txt\x00octet\x00", false},
		{"truncated", "\x00", false},
	} {
		t.Run("raw "+tc.name, func(t *testing.T) {
			var reply []byte
			err := p.cli.Do(func() error {
				// Unconnected: a TFTP server answers from a new port (the transfer ID).
				c, err := net.ListenPacket("udp4", "10.41.3.2:0")
				if err != nil {
					return err
				}
				defer c.Close()
				if _, err := c.WriteTo([]byte(tc.pkt), &net.UDPAddr{IP: net.IPv4(10, 41, 3, 1), Port: 69}); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 1024)
				n, _, err := c.ReadFrom(buf)
				if err == nil {
					reply = buf[:n]
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(reply) >= 2 && reply[1] != 5 {
				t.Fatalf("reply opcode %d (% x), want an ERROR or no reply", reply[1], reply)
			}
			if tc.wantError && (len(reply) < 4 || reply[1] != 5) {
				t.Fatalf("reply %q, want a TFTP ERROR", reply)
			}
			t.Logf("reply: %q", reply)
			if got, msg := tftpGet(t, "hello.txt"); string(got) != "hello from the root\n" {
				t.Fatalf("server unusable after %s: %q %s", tc.name, got, msg)
			}
		})
	}
	t.Run("netascii mode", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		msg, err := p.cli.Command(ctx, "tftp", "-m", "ascii", "10.41.3.1", "-c", "get", "hello.txt", out).CombinedOutput()
		if b, _ := os.ReadFile(out); err != nil || string(b) != "hello from the root\n" {
			t.Fatalf("netascii get: %q (%v) %s", b, err, msg)
		}
	})
	t.Run("write refused", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "upload")
		os.WriteFile(src, []byte("x"), 0o644)
		msg, _ := p.cli.Command(ctx, "tftp", "-m", "binary", "10.41.3.1", "-c", "put", src, "upload").CombinedOutput()
		if !strings.Contains(string(msg), "Error code") {
			t.Fatalf("put answered %q, want a TFTP error", msg)
		}
		for _, d := range []string{root, ipxe} {
			if _, err := os.Stat(filepath.Join(d, "upload")); err == nil {
				t.Fatalf("upload written into %s", d)
			}
		}
	})
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }
