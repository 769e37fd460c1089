package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/builder/capture"
)

func TestCaptureInventoryNode(t *testing.T) {
	state := t.TempDir()
	for _, args := range [][]string{
		{"group", "add", "compute", "--image", "compute-base"},
		{"node", "add", "golden01", "--mac", "52:54:00:00:00:21", "--ip", "10.46.0.21", "--group", "compute"},
		{"node", "known-hosts", "golden01", "--create"},
	} {
		if _, errOut, err := runCLI(t, append([]string{"--state", state, "-q"}, args...)...); err != nil {
			t.Fatalf("imgctl %v: %v\n%s", args, err, errOut)
		}
	}
	pub, _, _ := runCLI(t, "--state", state, "node", "known-hosts", "golden01")
	g := &globals{stateDir: state, stderr: &bytes.Buffer{}}
	tests := []struct {
		name                       string
		target                     string
		parentFlag                 string // "-" not given
		wantHost, wantName, wantPa string
		wantKnownHosts             bool
	}{
		{"inventory node", "golden01", "-", "10.46.0.21", "golden01", "imgctl/compute-base", true},
		{"whole capture of a node", "golden01", "", "10.46.0.21", "golden01", "", true},
		{"plain host", "root@10.9.9.9:2222", "-", "10.9.9.9", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			var o capture.Options
			cmd.Flags().StringVar(&o.Parent, "parent", "", "")
			if tc.parentFlag != "-" {
				cmd.Flags().Set("parent", tc.parentFlag)
			}
			cmd.SetContext(t.Context())
			target, err := capture.ParseTarget(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			cleanup, err := captureInventoryNode(cmd, g, &target, &o)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			if target.Host != tc.wantHost || o.Name != tc.wantName || o.Parent != tc.wantPa {
				t.Fatalf("host %q name %q parent %q; want %q %q %q", target.Host, o.Name, o.Parent, tc.wantHost, tc.wantName, tc.wantPa)
			}
			if !tc.wantKnownHosts {
				if o.SSH.KnownHosts != "" {
					t.Fatalf("plain host got known_hosts %s", o.SSH.KnownHosts)
				}
				return
			}
			b, err := os.ReadFile(o.SSH.KnownHosts)
			key := strings.Fields(pub)
			if err != nil || !strings.HasPrefix(string(b), "10.46.0.21 "+key[1]+" "+key[2]) {
				t.Fatalf("known_hosts = %q (%v); want imgctl's key for 10.46.0.21 (%s)", b, err, pub)
			}
		})
	}
}
