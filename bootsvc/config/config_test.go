package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/internal/netns/nstest"
	"github.com/imgctl/imgctl/internal/testenv"
)

func TestPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(path, []byte("dhcp:\n  unknown: discovery\n  lease_time: 2h\n  subnets: [{network: 10.41.0.0/24, pool: 10.41.0.100-10.41.0.110}]\ntftp:\n  enabled: false\nhttp:\n  listen: \":9000\"\n"), 0o600)
	for _, tc := range []struct {
		name string
		env  []string
		sets []string
		want map[string]string
	}{
		{"file over defaults", nil, nil, map[string]string{"unknown": "discovery", "lease": "2h0m0s", "listen": ":9000", "tftp": "false", "bios": "undionly.kpxe"}},
		{"env over file", []string{"IMGCTL_HTTP_LISTEN=:9100", "IMGCTL_STATE=/ignored", "IMGCTL_DHCP_BOOT_FILES_UEFI=snponly.efi"}, nil,
			map[string]string{"unknown": "discovery", "lease": "2h0m0s", "listen": ":9100", "tftp": "false", "bios": "undionly.kpxe"}},
		{"flags over env", []string{"IMGCTL_HTTP_LISTEN=:9100"}, []string{"http.listen=:9200", "tftp.enabled=true", "dhcp.lease_time=90m"},
			map[string]string{"unknown": "discovery", "lease": "1h30m0s", "listen": ":9200", "tftp": "true", "bios": "undionly.kpxe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(path, tc.env, tc.sets)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{"unknown": c.DHCP.Unknown, "lease": c.DHCP.LeaseTime.String(), "listen": c.HTTP.Listen,
				"tftp": map[bool]string{true: "true", false: "false"}[c.TFTP.Enabled], "bios": c.DHCP.BootFiles.BIOS}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
	c, _ := Load(path, []string{"IMGCTL_DHCP_BOOT_FILES_UEFI=snponly.efi"}, nil)
	if c.DHCP.BootFiles.UEFI != "snponly.efi" {
		t.Fatalf("nested env key not applied: %+v", c.DHCP.BootFiles)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		sets       []string
		want       []string
	}{
		{"unknown field names file and line", "dhcp:\n  unknwon: x\n", nil, []string{"serve.yaml:2", "unknwon"}},
		{"bad type", "tftp:\n  timeout: many\n", nil, []string{"serve.yaml:2"}},
		{"unknown --set key", "", []string{"dhcp.nope=1"}, []string{`unknown setting "dhcp.nope"`}},
		{"bad --set value", "", []string{"dhcp.lease_time=forever"}, []string{"dhcp.lease_time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "serve.yaml")
			os.WriteFile(path, []byte(tc.file), 0o600)
			_, err := Load(path, nil, tc.sets)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Load error %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEverySection(t *testing.T) {
	c := Default()
	c.DHCP.Unknown = "sometimes"
	c.TFTP.Listen = "no-port"
	c.HTTP.Listen = ""
	c.NFS.Enabled = true
	err := c.Validate()
	for _, w := range []string{"dhcp.unknown", "tftp.listen", "http.listen", "http.public_url", "nfs.address"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %s", err, w)
		}
	}
}

func TestResolveInNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := nstest.NewPair(t, ctx, nstest.PairConfig{Prefix: "cf", ServerAddr: "10.41.4.1/24", ClientAddr: "10.41.4.2/24"})
	a, ifname := p.Server, p.ServerIf
	var c Config
	if err := a.Do(func() error { c = Default(); return c.Resolve() }); err != nil {
		t.Fatal(err)
	}
	got := []string{c.Interface, c.Address, c.DHCP.ServerIP, c.DHCP.Interface, c.HTTP.PublicURL, c.DHCP.ScriptURL}
	want := []string{ifname, "10.41.4.1", "10.41.4.1", ifname, "http://10.41.4.1:8080", "http://10.41.4.1:8080/ipxe?mac=${net0/mac}"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("resolved (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("resolved defaults do not validate: %v", err)
	}
	if err := a.Do(func() error { c := Default(); c.Address = "10.9.9.9"; return c.Resolve() }); err == nil {
		t.Fatal("address not on this host accepted")
	}
}

func TestViewerToken(t *testing.T) {
	for _, tc := range []struct {
		name, admin, viewer string
		want                []string // substrings of the error; nil: valid
		ui                  bool
	}{
		{"none", "", "", nil, false},
		{"admin only", "0123456789abcdef", "", nil, true},
		{"viewer only", "", "viewer-0123456789", nil, true},
		{"short", "", "short", []string{"http.viewer_token: shorter than 16"}, true},
		{"same as admin", "0123456789abcdef", "0123456789abcdef", []string{"http.viewer_token: the same as http.admin_token"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", nil, []string{"http.admin_token=" + tc.admin, "http.viewer_token=" + tc.viewer, "http.public_url=http://10.0.0.1:8080"})
			if err != nil {
				t.Fatal(err)
			}
			err = c.HTTP.validateViewer()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("error %v, want it to contain %q", err, w)
				}
			}
			if tc.want == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got := c.UIEnabled(); got != tc.ui {
				t.Fatalf("UIEnabled = %v, want %v", got, tc.ui)
			}
			if tc.viewer != "" && c.Redacted().HTTP.ViewerToken != "<redacted>" {
				t.Fatal("viewer token not redacted")
			}
		})
	}
}
