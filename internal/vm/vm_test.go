package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestArgs(t *testing.T) {
	rom := filepath.Join(t.TempDir(), "pxe.rom")
	if err := os.WriteFile(rom, []byte("rom"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		m       Machine
		want    []string // substrings that must be among the arguments
		wantErr string
	}{
		{"tcg", Machine{MAC: "52:54:00:AA:00:01", Tap: "tap0", SerialLog: "/x/serial.log", ROM: rom},
			[]string{"tcg,thread=multi", "qemu64,-svm", "1024", "-no-reboot", "file,id=s0,path=/x/serial.log",
				"tap,id=n0,ifname=tap0,script=no,downscript=no",
				"virtio-net-pci,netdev=n0,mac=52:54:00:aa:00:01,disable-legacy=on,romfile=" + rom}, ""},
		{"kvm", Machine{MAC: "52:54:00:aa:00:02", Tap: "t", SerialLog: "l", ROM: rom, Accel: AccelKVM, MemoryMiB: 2048},
			[]string{"kvm", "host", "2048"}, ""},
		{"bad mac", Machine{MAC: "52:54:00", Tap: "t", SerialLog: "l", ROM: rom}, nil, "not an Ethernet MAC"},
		{"no tap", Machine{MAC: "52:54:00:aa:00:02", SerialLog: "l", ROM: rom}, nil, "needs a tap"},
		{"no rom", Machine{MAC: "52:54:00:aa:00:02", Tap: "t", SerialLog: "l", ROM: rom + ".missing"}, nil, "install ipxe-qemu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Args()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, a := range got {
				have[a] = true
			}
			for _, w := range tt.want {
				if !have[w] {
					t.Errorf("argument %q missing from %q", w, got)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		line    string
		phase   string
		failure bool
	}{
		{"iPXE (https://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+3FF8C8A0+3FECC8A0 CA00", PhaseFirmware, false},
		{"Configuring (net0 52:54:00:aa:00:01)...... ok", PhaseDHCP, false},
		{"Configuring (net0 52:54:00:aa:00:01)......", "", false},
		{"[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)", PhaseKernel, false},
		{"[    1.9] systemd[1]: Starting dracut-cmdline.service - dracut cmdline hook...", PhaseInitrd, false},
		{"[  OK  ] Reached target initrd-root-fs.target - Initrd Root File System.", PhaseRoot, false},
		{"         Starting initrd-switch-root.service - Switch Root...", PhaseSwitchRoot, false},
		{"[  OK  ] Reached target multi-user.target - Multi-User System.", PhaseMultiUser, false},
		{"[FAILED] Failed to start foo.service.", "", true},
		{"watchdog: BUG: soft lockup - CPU#0 stuck for 22s!", "", true},
		{"Command line: ip=dhcp rd.emergency=poweroff", "", false},
		{"imgctl: root image rejected (attempt 1/3): piece 3: sha256 …", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			phase, failure := Classify(tt.line)
			if phase != tt.phase || failure != tt.failure {
				t.Errorf("Classify = %q, %v; want %q, %v", phase, failure, tt.phase, tt.failure)
			}
		})
	}
}

func TestCleanLine(t *testing.T) {
	if got := cleanLine("\x1b[2J\x1b[0;37miPXE ok\r"); got != "iPXE ok" {
		t.Errorf("cleanLine = %q", got)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tail(ctx, path, nil, func(l string) { lines <- l })
	}()
	// The file appears late and grows in pieces that split lines.
	time.Sleep(300 * time.Millisecond)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []string{"first\r\nsec", "ond\n", "third"} {
		f.WriteString(chunk)
		time.Sleep(250 * time.Millisecond)
	}
	var got []string
	for len(got) < 2 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-ctx.Done():
			t.Fatalf("lines so far %q", got)
		}
	}
	cancel()
	<-done
	if d := cmp.Diff([]string{"first", "second"}, got); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
}
