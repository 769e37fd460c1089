// Package bmctest holds the BMC peers tests drive: a recorded-fixture Redfish
// service (DMTF mockup format, stateful, auth-enforcing) and Debian's ipmi_sim
// started on loopback. Test code only.
package bmctest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// RedfishFixture is a RECORDED-FIXTURE Redfish service, not an emulator:
// Debian's archive has no Redfish emulator and PyPI (sushy-tools, the DMTF
// emulator) is unreachable here. Its resources follow the DMTF public mockup
// format (ServiceRoot, SessionService, Systems/1 with Boot, PowerState,
// Actions/#ComputerSystem.Reset and EthernetInterfaces), and it keeps the state
// a real BMC would change: PowerState after Reset, Boot after PATCH. It
// requires a session token or basic auth, so wrong credentials fail.
type RedfishFixture struct {
	mu         sync.Mutex
	user, pass string
	power      string
	bootTarget string
	bootOnce   string
	resets     []string
	macs       []string
	token      string
}

// Fixture credentials.
const (
	User     = "admin"
	Password = "s3cret-pw"
)

// NewRedfishFixture serves a RedfishFixture on loopback (TLS with a
// self-signed certificate when tlsServer), closed in t.Cleanup.
func NewRedfishFixture(t testing.TB, tlsServer bool) (*RedfishFixture, *httptest.Server) {
	f := &RedfishFixture{user: User, pass: Password, power: "Off", bootTarget: "None", bootOnce: "Disabled",
		macs: []string{"52:54:00:AA:00:01", "52:54:00:AA:00:02"}, token: "fixture-token-1"}
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(f)
	} else {
		srv = httptest.NewServer(f)
	}
	t.Cleanup(srv.Close)
	return f, srv
}

// SetMACs changes the NIC MACs the system reports (two fixtures standing for
// two machines must not report the same ones).
func (f *RedfishFixture) SetMACs(macs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.macs = macs
}

// FixtureState is what a test checks after driving the fixture.
type FixtureState struct {
	Power, BootTarget, BootOnce string
	Resets                      []string
}

// State returns the fixture's current power and boot state.
func (f *RedfishFixture) State() FixtureState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FixtureState{Power: f.power, BootTarget: f.bootTarget, BootOnce: f.bootOnce, Resets: append([]string(nil), f.resets...)}
}

// ServeHTTP answers Redfish requests like a BMC would.
func (f *RedfishFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimSuffix(r.URL.Path, "/")
	write := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	if path == "/redfish/v1" {
		write(map[string]any{"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "Id": "RootService", "RedfishVersion": "1.6.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"}, "SessionService": map[string]string{"@odata.id": "/redfish/v1/SessionService"},
			"Links": map[string]any{"Sessions": map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions"}}})
		return
	}
	if path == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost {
		var body struct{ UserName, Password string }
		json.NewDecoder(r.Body).Decode(&body)
		if body.UserName != f.user || body.Password != f.pass {
			http.Error(w, `{"error":{"message":"invalid credentials"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Auth-Token", f.token)
		w.Header().Set("Location", "/redfish/v1/SessionService/Sessions/1")
		w.WriteHeader(http.StatusCreated)
		write(map[string]any{"@odata.id": "/redfish/v1/SessionService/Sessions/1", "Id": "1", "UserName": f.user})
		return
	}
	user, pass, basic := r.BasicAuth()
	if r.Header.Get("X-Auth-Token") != f.token && !(basic && user == f.user && pass == f.pass) {
		http.Error(w, `{"error":{"message":"unauthorized"}}`, http.StatusUnauthorized)
		return
	}
	switch {
	case path == "/redfish/v1/SessionService/Sessions/1" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case path == "/redfish/v1/Systems":
		write(map[string]any{"@odata.id": "/redfish/v1/Systems", "Members@odata.count": 1, "Members": []map[string]string{{"@odata.id": "/redfish/v1/Systems/1"}}})
	case path == "/redfish/v1/Systems/1" && r.Method == http.MethodPatch:
		var body struct {
			Boot struct{ BootSourceOverrideTarget, BootSourceOverrideEnabled string }
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.bootTarget, f.bootOnce = body.Boot.BootSourceOverrideTarget, body.Boot.BootSourceOverrideEnabled
		w.WriteHeader(http.StatusNoContent)
	case path == "/redfish/v1/Systems/1":
		write(map[string]any{"@odata.id": "/redfish/v1/Systems/1", "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem", "Id": "1",
			"HostName": "node-from-bmc", "SerialNumber": "SN123", "PowerState": f.power,
			"Boot":               map[string]any{"BootSourceOverrideTarget": f.bootTarget, "BootSourceOverrideEnabled": f.bootOnce},
			"EthernetInterfaces": map[string]string{"@odata.id": "/redfish/v1/Systems/1/EthernetInterfaces"},
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{"target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}}}})
	case path == "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
		var body struct{ ResetType string }
		json.NewDecoder(r.Body).Decode(&body)
		f.resets = append(f.resets, body.ResetType)
		switch body.ResetType {
		case "On", "ForceRestart", "PowerCycle":
			f.power = "On"
		case "ForceOff", "GracefulShutdown":
			f.power = "Off"
		default:
			http.Error(w, "bad ResetType", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "/redfish/v1/Systems/1/EthernetInterfaces":
		var members []map[string]string
		for i := range f.macs {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/Systems/1/EthernetInterfaces/" + string(rune('1'+i))})
		}
		write(map[string]any{"@odata.id": path, "Members": members, "Members@odata.count": len(members)})
	case strings.HasPrefix(path, "/redfish/v1/Systems/1/EthernetInterfaces/"):
		i := int(path[len(path)-1] - '1')
		if i < 0 || i >= len(f.macs) {
			http.NotFound(w, r)
			return
		}
		write(map[string]any{"@odata.id": path, "Id": path[len(path)-1:], "MACAddress": f.macs[i]})
	default:
		http.NotFound(w, r)
	}
}
