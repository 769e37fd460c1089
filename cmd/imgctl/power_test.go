package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/imgctl/imgctl/bootsvc/bmc"
	"github.com/imgctl/imgctl/bootsvc/bmc/bmctest"
	"github.com/imgctl/imgctl/bootsvc/inventory"
)

// runCLI runs imgctl in-process and returns stdout, stderr and the error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

// TestPowerCLI drives three nodes through the CLI: one behind the
// recorded-fixture Redfish service (password from a 0600 secrets file), one
// behind Debian's ipmi_sim (password in the inventory), one whose BMC port is
// closed. The good two change state, the third fails on its own, the exit is
// non-zero and no password reaches the output.
func TestPowerCLI(t *testing.T) {
	fixture, srv := bmctest.NewRedfishFixture(t, false)
	ipmiAddr, ipmiState := bmctest.IPMISim(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	writeFile(t, inv, 0o600, fmt.Sprintf(`groups:
  compute:
    bmc: {protocol: redfish, user: admin}
nodes:
  nid001: {groups: [compute], bmc: {address: %q}}
  nid002: {bmc: {address: %q, protocol: ipmi, user: admin, password: %s}}
  nid003: {groups: [compute], bmc: {address: "http://%s"}}
`, srv.URL, ipmiAddr, bmctest.Password, closedAddr))
	secrets := filepath.Join(dir, "secrets.yaml")
	writeFile(t, secrets, 0o600, "compute: {password: "+bmctest.Password+"}\n")

	stdout, stderr, err := runCLI(t, "-v", "--inventory", inv, "power", "on", "nid[001-003]", "--bmc-secrets", secrets, "--ipmi-cipher", "3", "--timeout", "20s", "-o", "json")
	if !errors.Is(err, errSilent) {
		t.Fatalf("power on with one dead BMC: err %v, want errSilent\n%s", err, stderr)
	}
	var res []bmc.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	got := map[string]bool{}
	for _, r := range res {
		got[r.Node] = r.OK
	}
	if d := cmp.Diff(map[string]bool{"nid001": true, "nid002": true, "nid003": false}, got); d != "" {
		t.Errorf("per-node OK (-want +got):\n%s\n%s", d, stdout)
	}
	if len(res) == 3 && !strings.Contains(res[2].Error, "refused") {
		t.Errorf("nid003 error %q, want connection refused", res[2].Error)
	}
	if fixture.State().Power != "On" {
		t.Errorf("redfish node power %s after on", fixture.State().Power)
	}
	if b, _ := os.ReadFile(filepath.Join(ipmiState, "power")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("ipmi node power %q after on", b)
	}
	if !strings.Contains(stderr, "nid002") || strings.Contains(stdout+stderr, bmctest.Password) {
		t.Errorf("want a debug log naming nid002 and no password in the output:\n%s\n%s", stdout, stderr)
	}

	// pxe on both good nodes: one-time network boot, then reset.
	if out, stderr, err := runCLI(t, "--inventory", inv, "power", "pxe", "nid[001-002]", "--bmc-secrets", secrets, "--ipmi-cipher", "3", "-q"); err != nil {
		t.Fatalf("power pxe: %v\n%s%s", err, out, stderr)
	}
	if st := fixture.State(); st.BootTarget != "Pxe" || st.BootOnce != "Once" || st.Resets[len(st.Resets)-1] != "ForceRestart" {
		t.Errorf("redfish after pxe: %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(ipmiState, "boot")); strings.TrimSpace(string(b)) != "pxe" {
		t.Errorf("ipmi boot device %q after pxe", b)
	}

	// Text table: status per node.
	out, _, err := runCLI(t, "--inventory", inv, "power", "status", "nid[001-002]", "--bmc-secrets", secrets, "--ipmi-cipher", "3", "-q")
	if err != nil || !strings.Contains(out, "nid001") || strings.Count(out, " on ") < 2 {
		t.Errorf("status table: %v\n%s", err, out)
	}

	// Bad input: world-readable secrets, unknown node.
	loose := filepath.Join(dir, "loose.yaml")
	writeFile(t, loose, 0o644, "compute: {password: x}\n")
	if _, _, err := runCLI(t, "--inventory", inv, "power", "status", "nid001", "--bmc-secrets", loose); err == nil || !strings.Contains(err.Error(), "want 0600") {
		t.Errorf("0644 secrets file: %v", err)
	}
	if _, _, err := runCLI(t, "--inventory", inv, "power", "status", "nid009"); err == nil || !strings.Contains(err.Error(), `no node "nid009"`) {
		t.Errorf("unknown node: %v", err)
	}
}

// TestDiscoverRedfishCLI proposes and applies inventory nodes from two
// recorded-fixture Redfish BMCs (self-signed TLS, --insecure) and one dead one.
func TestDiscoverRedfishCLI(t *testing.T) {
	_, a := bmctest.NewRedfishFixture(t, true)
	fb, b := bmctest.NewRedfishFixture(t, true)
	fb.SetMACs("52:54:00:BB:00:01", "52:54:00:BB:00:02") // another machine, other NICs
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	host := func(u string) string { return strings.TrimPrefix(u, "https://") }
	bmcs := host(a.URL) + "," + host(b.URL)
	inv := filepath.Join(t.TempDir(), "nodes.yaml")
	t.Setenv("IMGCTL_BMC_PASSWORD", bmctest.Password)

	out, _, err := runCLI(t, "--inventory", inv, "discover", "redfish", bmcs+","+dead, "--user", bmctest.User,
		"--insecure", "--name-pattern", "nid[001-002]", "--group", "compute", "--apply", "--timeout", "10s", "-o", "json")
	if !errors.Is(err, errSilent) {
		t.Fatalf("discover with a dead BMC: %v, want errSilent", err)
	}
	var props []proposal
	if err := json.Unmarshal([]byte(out), &props); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if len(props) != 3 || props[0].Node != "nid001" || props[1].Node != "nid002" || props[2].Error == "" {
		t.Errorf("proposals: %+v", props)
	}
	loaded, err := inventory.Load(inv)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := loaded.Raw("nid002")
	if !ok || strings.Join(n.MACs, ",") != "52:54:00:bb:00:01,52:54:00:bb:00:02" || n.BMC.Address != host(b.URL) || !n.BMC.Insecure || n.Groups[0] != "compute" {
		t.Errorf("applied nid002: %+v", n)
	}
	data, _ := os.ReadFile(inv)
	if strings.Contains(string(data)+out, bmctest.Password) {
		t.Errorf("password written:\n%s", data)
	}
	// A second apply would duplicate names: refused, file unchanged.
	if _, _, err := runCLI(t, "--inventory", inv, "discover", "redfish", bmcs, "--user", bmctest.User,
		"--insecure", "--name-pattern", "nid[001-002]", "--apply", "-q"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate apply: %v", err)
	}
	if again, _ := os.ReadFile(inv); !bytes.Equal(again, data) {
		t.Errorf("inventory changed by a refused apply")
	}
}

func writeFile(t *testing.T, path string, mode os.FileMode, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
