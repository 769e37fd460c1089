package bmc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRedfishFixturePowerAndBoot(t *testing.T) {
	f, srv := newRedfishFixture(t, false)
	target := Target{Node: "nid001", Address: srv.URL, Protocol: Redfish, User: "admin", Password: "s3cret-pw"}
	ctx := context.Background()
	steps := []struct {
		action    Action
		wantPower string
	}{{Status, "Off"}, {On, "On"}, {Off, "Off"}, {Cycle, "On"}, {Soft, "Off"}, {PXE, "On"}}
	for _, s := range steps {
		if _, err := Do(ctx, target, s.action); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
		if f.power != s.wantPower {
			t.Errorf("after %s power is %s, want %s", s.action, f.power, s.wantPower)
		}
	}
	if f.bootTarget != "Pxe" || f.bootOnce != "Once" {
		t.Errorf("boot override %s/%s, want Pxe/Once", f.bootTarget, f.bootOnce)
	}
	if got := strings.Join(f.resets, ","); got != "On,ForceOff,PowerCycle,GracefulShutdown,On" {
		t.Errorf("reset types sent: %s", got)
	}
	// Auto-detection finds Redfish.
	if out, err := Do(ctx, Target{Node: "n", Address: srv.URL, User: "admin", Password: "s3cret-pw"}, Status); err != nil || out != "on" {
		t.Errorf("auto-detected status: %q %v", out, err)
	}
}

func TestRedfishTLSVerification(t *testing.T) {
	_, srv := newRedfishFixture(t, true)
	target := Target{Node: "n", Address: srv.URL, Protocol: Redfish, User: "admin", Password: "s3cret-pw"}
	if _, err := Do(context.Background(), target, Status); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("self-signed BMC with verification on: %v, want a certificate error", err)
	}
	target.Insecure = true
	if _, err := Do(context.Background(), target, Status); err != nil {
		t.Errorf("insecure BMC: %v", err)
	}
}

func TestDiscoverRedfish(t *testing.T) {
	_, srv := newRedfishFixture(t, false)
	systems, err := Discover(context.Background(), Target{Node: "bmc", Address: srv.URL, User: "admin", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if len(systems) != 1 || systems[0].HostName != "node-from-bmc" || strings.Join(systems[0].MACs, ",") != "52:54:00:aa:00:01,52:54:00:aa:00:02" {
		t.Errorf("discovered %+v", systems)
	}
}

// TestFanoutFailures: unreachable, silent, garbage-answering and wrong-password
// BMCs each fail on their own with a clear error; a good one still succeeds,
// and nothing leaks the password.
func TestFanoutFailures(t *testing.T) {
	_, good := newRedfishFixture(t, false)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>not redfish")) }))
	defer garbage.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, _ := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	const secret = "s3cret-pw"
	targets := []Target{
		{Node: "good", Address: good.URL, Protocol: Redfish, User: "admin", Password: secret},
		{Node: "wrongpw", Address: good.URL, Protocol: Redfish, User: "admin", Password: "nope-" + secret},
		{Node: "garbage", Address: garbage.URL, Protocol: Redfish, User: "admin", Password: secret},
		{Node: "closed", Address: "http://" + closedAddr, Protocol: Redfish, User: "admin", Password: secret},
		{Node: "silent", Address: "http://" + silent.Addr().String(), Protocol: Redfish, User: "admin", Password: secret},
		{Node: "noaddr", Protocol: Redfish},
	}
	start := time.Now()
	res := Run(context.Background(), targets, Status, 3, 2*time.Second)
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("fan-out took %v; a silent BMC must not hold up the others", d)
	}
	byNode := map[string]Result{}
	for _, r := range res {
		byNode[r.Node] = r
	}
	if !byNode["good"].OK {
		t.Errorf("good BMC failed: %+v", byNode["good"])
	}
	for node, want := range map[string]string{"wrongpw": "401", "garbage": "", "closed": "refused", "silent": "no answer within", "noaddr": "no BMC address"} {
		r := byNode[node]
		if r.OK || !strings.Contains(r.Error, want) {
			t.Errorf("%s: %+v, want a failure mentioning %q", node, r, want)
		}
	}
	b, _ := json.Marshal(res)
	if bytes.Contains(b, []byte(secret)) {
		t.Errorf("results leak the password: %s", b)
	}
}

// ipmiSim starts Debian's ipmi_sim on a loopback port with one admin user.
// Power and boot device are kept by a chassis-control program (the simulated
// hardware behind the BMC) in state files, as ipmi_sim's external control
// protocol specifies ("DEVICE get PARM…" / "DEVICE set PARM VAL…").
func ipmiSim(t *testing.T) (addr, stateDir string) {
	t.Helper()
	for _, c := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (openipmi, ipmitool)", c)
		}
	}
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "chassis")
	os.MkdirAll(stateDir, 0o755)
	os.MkdirAll(filepath.Join(dir, "sim"), 0o755)
	os.WriteFile(filepath.Join(stateDir, "power"), []byte("0\n"), 0o644)
	os.WriteFile(filepath.Join(stateDir, "boot"), []byte("default\n"), 0o644)
	ctl := filepath.Join(dir, "chassiscontrol")
	os.WriteFile(ctl, []byte(`#!/bin/sh
dir=`+stateDir+`
shift
op=$1; shift
case $op in
get) for p in "$@"; do printf '%s:%s\n' "$p" "$(cat "$dir/$p" 2>/dev/null || echo 0)"; done ;;
set) while [ $# -ge 2 ]; do
       case $1 in reset) echo 1 > "$dir/power"; echo reset >> "$dir/log" ;; *) echo "$2" > "$dir/$1" ;; esac
       shift 2
     done ;;
esac
`), 0o755)
	l, _ := net.ListenPacket("udp", "127.0.0.1:0")
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`name "imgctltest"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s 0x20"
  user 1 true  ""      "unused" user     10       none md2 md5 straight
  user 2 true  "admin" "s3cret-pw" admin    10       none md2 md5 straight
`, port, ctl)
	os.WriteFile(filepath.Join(dir, "lan.conf"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(dir, "bmc.emu"), []byte("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n"), 0o644)
	cmd := exec.Command("ipmi_sim", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "bmc.emu"), "-s", filepath.Join(dir, "sim"), "-n")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("ipmi_sim log:\n%s", log.String())
		}
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	// Wait until it answers.
	for i := 0; i < 30; i++ {
		if _, err := Do(context.Background(), Target{Node: "probe", Address: addr, Protocol: IPMI, User: "admin", Password: "s3cret-pw", CipherSuite: 3}, Status); err == nil {
			return addr, stateDir
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ipmi_sim on %s never answered", addr)
	return "", ""
}

func TestIPMISim(t *testing.T) {
	addr, state := ipmiSim(t)
	ctx := context.Background()
	target := Target{Node: "nid001", Address: addr, Protocol: IPMI, User: "admin", Password: "s3cret-pw", CipherSuite: 3}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(state, name))
		return strings.TrimSpace(string(b))
	}
	tests := []struct {
		action    Action
		wantOut   string
		wantPower string
	}{
		{Status, "off", "0"},
		{On, "on done", "1"},
		{Status, "on", "1"},
		{Off, "off done", "0"},
		{PXE, "pxe once, on", "1"},
		{Cycle, "cycle done", "1"},
	}
	for _, tt := range tests {
		out, err := Do(ctx, target, tt.action)
		if err != nil {
			t.Fatalf("%s: %v", tt.action, err)
		}
		// A cycle powers back on after a moment; wait for it (bounded).
		for i := 0; i < 50 && read("power") != tt.wantPower; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if out != tt.wantOut || read("power") != tt.wantPower {
			t.Errorf("%s: output %q power %q, want %q and %q", tt.action, out, read("power"), tt.wantOut, tt.wantPower)
		}
	}
	if b := read("boot"); b != "pxe" {
		t.Errorf("boot device %q after pxe, want pxe", b)
	}
	// Wrong password: a clear per-node error.
	bad := target
	bad.Password = "wrong"
	res := Run(ctx, []Target{target, bad}, Status, 2, 10*time.Second)
	if !res[0].OK || res[0].Output != "on" {
		t.Errorf("good node: %+v", res[0])
	}
	if res[1].OK || strings.Contains(res[1].Error, "wrong") {
		t.Errorf("wrong password: %+v (must fail and not echo the password)", res[1])
	}
}
