package bmc

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bmc/bmctest"
)

func TestRedfishFixturePowerAndBoot(t *testing.T) {
	f, srv := bmctest.NewRedfishFixture(t, false)
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
		if got := f.State().Power; got != s.wantPower {
			t.Errorf("after %s power is %s, want %s", s.action, got, s.wantPower)
		}
	}
	st := f.State()
	if st.BootTarget != "Pxe" || st.BootOnce != "Once" {
		t.Errorf("boot override %s/%s, want Pxe/Once", st.BootTarget, st.BootOnce)
	}
	if got := strings.Join(st.Resets, ","); got != "On,ForceOff,PowerCycle,GracefulShutdown,On" {
		t.Errorf("reset types sent: %s", got)
	}
	// Auto-detection finds Redfish.
	if out, err := Do(ctx, Target{Node: "n", Address: srv.URL, User: "admin", Password: "s3cret-pw"}, Status); err != nil || out != "on" {
		t.Errorf("auto-detected status: %q %v", out, err)
	}
}

func TestRedfishTLSVerification(t *testing.T) {
	_, srv := bmctest.NewRedfishFixture(t, true)
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
	_, srv := bmctest.NewRedfishFixture(t, false)
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
	_, good := bmctest.NewRedfishFixture(t, false)
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
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res := Run(context.Background(), log, targets, Status, 3, 2*time.Second)
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
	if !strings.Contains(logBuf.String(), "node=wrongpw") || strings.Contains(logBuf.String(), secret) {
		t.Errorf("debug log must name every node and never the password:\n%s", logBuf.String())
	}
}

func TestIPMISim(t *testing.T) {
	addr, state := bmctest.IPMISim(t)
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
	res := Run(ctx, nil, []Target{target, bad}, Status, 2, 10*time.Second)
	if !res[0].OK || res[0].Output != "on" {
		t.Errorf("good node: %+v", res[0])
	}
	if res[1].OK || strings.Contains(res[1].Error, "wrong") {
		t.Errorf("wrong password: %+v (must fail and not echo the password)", res[1])
	}
}
