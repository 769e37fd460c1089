package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testImage returns image bytes and a manifest that describes them in pieces
// of pieceSize bytes.
func testImage(size int, pieceSize int64) ([]byte, *manifest) {
	img := make([]byte, size)
	for i := range img {
		img[i] = byte(i*7 + i/251)
	}
	m := &manifest{ImageDigest: "sha256:abc"}
	m.Artifacts = map[string]struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}{"rootfs": {Size: int64(size), SHA256: hexSum(img)}}
	m.Root.PieceSize = pieceSize
	for off := int64(0); off < int64(size); off += pieceSize {
		m.Root.Pieces = append(m.Root.Pieces, hexSum(img[off:min(off+pieceSize, int64(size))]))
	}
	return img, m
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name, in string
		want     [][2]string
	}{
		{"ours only", "BOOT_IMAGE=k ip=dhcp imgctl.url=http://10.50.0.1:8080 imgctl.node=nid001 root=live:x",
			[][2]string{{"IMGCTL_URL", "http://10.50.0.1:8080"}, {"IMGCTL_NODE", "nid001"}}},
		{"value with equals", "imgctl.root=http://h/a?token=t=1", [][2]string{{"IMGCTL_ROOT", "http://h/a?token=t=1"}}},
		{"bad keys skipped", "imgctl.=x imgctl.Bad=y imgctl.a-b=z imgctl.mode", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, parseCmdline(tt.in)); d != "" {
				t.Errorf("parseCmdline (-want +got):\n%s", d)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"a": "'a'", "it's": `'it'\''s'`, "$(x)": "'$(x)'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// flakyServer serves img with Range support; the first failFirst requests
// fail with 503 and corrupt, when set, changes the served bytes.
type flakyServer struct {
	mu        sync.Mutex
	img       []byte
	failFirst int
	requests  int
	ranges    []string
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	n := s.requests
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if n <= s.failFirst {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	http.ServeContent(w, r, "rootfs.squashfs", time.Time{}, bytes.NewReader(s.img))
}

func TestFetchVerified(t *testing.T) {
	const piece = 4096
	tests := []struct {
		name      string
		size      int
		corrupt   int // byte offset to flip in the served image, -1 for none
		failFirst int
		wantErr   bool
		mismatch  bool
	}{
		{"whole pieces", 4 * piece, -1, 0, false, false},
		{"short last piece", 3*piece + 123, -1, 0, false, false},
		{"server down then up", 2 * piece, -1, 2, false, false},
		{"corrupt piece rejected", 3 * piece, piece + 5, 0, true, true},
		{"server never up", piece, -1, 100, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, m := testImage(tt.size, piece)
			served := bytes.Clone(img)
			if tt.corrupt >= 0 {
				served[tt.corrupt] ^= 0xff
			}
			srv := &flakyServer{img: served, failFirst: tt.failFirst}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			out := filepath.Join(t.TempDir(), "root.img")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := fetchVerifiedRetry(ctx, ts.URL+"/root", m, out, 3, 10*time.Millisecond)
			if (err != nil) != tt.wantErr {
				t.Fatalf("fetchVerified error = %v, want error %v", err, tt.wantErr)
			}
			var mm errMismatch
			if got := errors.As(err, &mm); got != tt.mismatch {
				t.Errorf("mismatch error = %v (%v), want %v", got, err, tt.mismatch)
			}
			if err != nil {
				return
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Errorf("fetched image differs from the original (%d vs %d bytes)", len(got), len(img))
			}
			for _, r := range srv.ranges {
				if !strings.HasPrefix(r, "bytes=") {
					t.Errorf("request without a piece range: %q", r)
				}
			}
		})
	}
}

func TestGetManifest(t *testing.T) {
	_, m := testImage(5000, 4096)
	good, _ := json.Marshal(m)
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{"good", string(good), ""},
		{"not json", "{", "manifest"},
		{"no pieces", `{"artifacts":{"rootfs":{"size":1,"sha256":"aa"}}}`, "no root image pieces"},
		// Pieces are all the agent verifies, so a table that leaves bytes out
		// (or names more than there are) must not pass.
		{"table short of the size", `{"artifacts":{"rootfs":{"size":5000,"sha256":"aa"}},"root":{"piece_size":4096,"pieces":["bb"]}}`, "want 2"},
		{"table past the size", `{"artifacts":{"rootfs":{"size":4096,"sha256":"aa"}},"root":{"piece_size":4096,"pieces":["bb","cc"]}}`, "want 1"},
		{"empty image", `{"artifacts":{"rootfs":{"size":0,"sha256":"aa"}},"root":{"piece_size":4096,"pieces":[]}}`, "want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.body)
			}))
			defer ts.Close()
			got, err := getManifest(context.Background(), ts.URL+"/manifest.json", 2)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(m.Root.Pieces, got.Root.Pieces); d != "" {
				t.Errorf("pieces (-want +got):\n%s", d)
			}
		})
	}
}

func TestPhoneHome(t *testing.T) {
	mounts := filepath.Join(t.TempDir(), "mounts")
	os.WriteFile(mounts, []byte("rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n"+
		"LiveOS_rootfs / overlay rw,lowerdir=/run/rootfsbase,upperdir=/run/overlayfs 0 0\n"), 0o644)
	var got report
	var gotPath, gotToken string
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		gotPath, gotToken = r.URL.Path, r.URL.Query().Get("token")
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer ts.Close()
	err := runPhoneHome(context.Background(), []string{"--server", ts.URL + "/", "--node", "nid001",
		"--token", "t&k", "--state", "booted", "--digest", "sha256:abc", "--mounts", mounts})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := report{State: "booted", ImageDigest: "sha256:abc", Hostname: host,
		RootMount: "LiveOS_rootfs / overlay rw,lowerdir=/run/rootfsbase,upperdir=/run/overlayfs 0 0"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("report (-want +got):\n%s", d)
	}
	if gotPath != "/api/v1/nodes/nid001/state" || gotToken != "t&k" {
		t.Errorf("posted to %s token %q", gotPath, gotToken)
	}
}

func TestPhoneHomeDigestFromManifest(t *testing.T) {
	_, m := testImage(100, 64)
	m.ImageDigest = "sha256:feed"
	var got report
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			json.NewEncoder(w).Encode(m)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer ts.Close()
	err := runPhoneHome(context.Background(), []string{"--server", ts.URL, "--node", "n1",
		"--state", "failed", "--reason", "sha256 mismatch", "--manifest", ts.URL + "/manifest.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ImageDigest != "sha256:feed" || got.State != "failed" || got.Reason != "sha256 mismatch" {
		t.Errorf("report = %+v", got)
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"fetch"}, {"phonehome", "--node", "x"}, {"seed", "--file", "x"},
		{"fetch", "--manifest", "m", "--url", "u", "--out", "o", "--dist", "tree"}, {"fetch", "--manifest", "m", "--url", "u", "--out", "o", "--dist", "torrent"}} {
		var u usageErr
		if err := run(context.Background(), args); !errors.As(err, &u) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

func TestRootMount(t *testing.T) {
	tests := []struct{ name, mounts, want string }{
		{"plain", "rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n", "/dev/sda1 / ext4 rw 0 0"},
		{"live overlay names the squashfs",
			"/dev/loop0 /run/rootfsbase squashfs ro 0 0\nLiveOS_rootfs / overlay rw,lowerdir=/run/rootfsbase,upperdir=/run/overlayfs 0 0\n",
			"LiveOS_rootfs / overlay rw,lowerdir=/run/rootfsbase,upperdir=/run/overlayfs 0 0 | lower: /dev/loop0 /run/rootfsbase squashfs ro 0 0"},
		{"nfs overlay names the export",
			"10.0.0.1:/x /run/rootfsbase nfs4 ro,vers=4.2 0 0\noverlay / overlay rw,lowerdir=/run/rootfsbase:/other,upperdir=/run/ovl 0 0\n",
			"overlay / overlay rw,lowerdir=/run/rootfsbase:/other,upperdir=/run/ovl 0 0 | lower: 10.0.0.1:/x /run/rootfsbase nfs4 ro,vers=4.2 0 0"},
		{"lower not mounted", "overlay / overlay rw,lowerdir=/gone 0 0\n", "overlay / overlay rw,lowerdir=/gone 0 0"},
		{"no root", "proc /proc proc rw 0 0\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mounts")
			os.WriteFile(p, []byte(tt.mounts), 0o644)
			if got := rootMount(p); got != tt.want {
				t.Errorf("rootMount = %q, want %q", got, tt.want)
			}
		})
	}
}
