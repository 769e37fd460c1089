package bmctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// IPMISim starts Debian's ipmi_sim on a loopback port with one admin user.
// Power and boot device are kept by a chassis-control program (the simulated
// hardware behind the BMC) in state files, as ipmi_sim's external control
// protocol specifies ("DEVICE get PARM…" / "DEVICE set PARM VAL…").
func IPMISim(t testing.TB) (addr, stateDir string) {
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
		probe := exec.Command("ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", fmt.Sprint(port), "-U", User, "-E", "-C", "3", "-N", "1", "-R", "1", "chassis", "power", "status")
		probe.Env = append(os.Environ(), "IPMI_PASSWORD="+Password)
		if probe.Run() == nil {
			return addr, stateDir
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ipmi_sim on %s never answered", addr)
	return "", ""
}
