package bmc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// redfishBMC drives a Redfish service through gofish with a session.
type redfishBMC struct {
	t      Target
	client *gofish.APIClient
	system *schemas.ComputerSystem
}

func httpClient(insecure bool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}, // per-BMC choice from the inventory
	}}
}

func dialRedfish(ctx context.Context, t Target) (*redfishBMC, error) {
	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:   redfishEndpoint(t.Address),
		Username:   t.User,
		Password:   t.Password,
		Insecure:   t.Insecure,
		HTTPClient: httpClient(t.Insecure),
	})
	if err != nil {
		return nil, fmt.Errorf("redfish %s: %s", t.Address, scrub(err.Error(), t.Password))
	}
	systems, err := c.Service.Systems()
	if err != nil {
		c.Logout()
		return nil, fmt.Errorf("redfish %s: systems: %w", t.Address, err)
	}
	if len(systems) == 0 {
		c.Logout()
		return nil, fmt.Errorf("redfish %s: no ComputerSystem", t.Address)
	}
	return &redfishBMC{t: t, client: c, system: systems[0]}, nil
}

// scrub keeps a password out of an error text.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "********")
}

func (r *redfishBMC) PowerState(ctx context.Context) (string, error) {
	switch r.system.PowerState {
	case schemas.OnPowerState, schemas.PoweringOnPowerState:
		return "on", nil
	case schemas.OffPowerState, schemas.PoweringOffPowerState:
		return "off", nil
	}
	return "", fmt.Errorf("redfish %s: power state %q", r.t.Address, r.system.PowerState)
}

func (r *redfishBMC) Power(ctx context.Context, a Action) error {
	rt := map[Action]schemas.ResetType{
		On: schemas.OnResetType, Off: schemas.ForceOffResetType, Soft: schemas.GracefulShutdownResetType,
		Cycle: schemas.PowerCycleResetType, Reset: schemas.ForceRestartResetType,
	}[a]
	if rt == "" {
		return fmt.Errorf("redfish: unsupported action %s", a)
	}
	if _, err := r.system.Reset(rt); err != nil {
		return fmt.Errorf("redfish %s: reset %s: %w", r.t.Address, rt, err)
	}
	return nil
}

func (r *redfishBMC) BootPXEOnce(ctx context.Context) error {
	err := r.system.SetBoot(&schemas.Boot{
		BootSourceOverrideTarget:  schemas.PxeBootSource,
		BootSourceOverrideEnabled: schemas.OnceBootSourceOverrideEnabled,
	})
	if err != nil {
		return fmt.Errorf("redfish %s: set boot: %w", r.t.Address, err)
	}
	return nil
}

func (r *redfishBMC) Close() error {
	r.client.Logout()
	return nil
}

// System is what discovery reads from one BMC.
type System struct {
	BMC      string   `json:"bmc" yaml:"bmc"`
	ID       string   `json:"id" yaml:"id"`
	HostName string   `json:"hostname,omitempty" yaml:"hostname,omitempty"`
	Serial   string   `json:"serial,omitempty" yaml:"serial,omitempty"`
	MACs     []string `json:"macs" yaml:"macs"`
	Error    string   `json:"error,omitempty" yaml:"error,omitempty"`
}

// Discover reads every system and its NIC MAC addresses from a Redfish BMC.
func Discover(ctx context.Context, t Target) ([]System, error) {
	t.Protocol = Redfish
	r, err := dialRedfish(ctx, t)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	systems, err := r.client.Service.Systems()
	if err != nil {
		return nil, err
	}
	var out []System
	for _, s := range systems {
		sys := System{BMC: t.Address, ID: s.ID, HostName: s.HostName, Serial: s.SerialNumber}
		nics, err := s.EthernetInterfaces()
		if err != nil {
			return nil, fmt.Errorf("redfish %s: %s ethernet interfaces: %w", t.Address, s.ID, err)
		}
		for _, n := range nics {
			if n.MACAddress != "" {
				sys.MACs = append(sys.MACs, strings.ToLower(n.MACAddress))
			}
		}
		sort.Strings(sys.MACs) // gofish reads collections concurrently
		if len(sys.MACs) == 0 {
			sys.Error = "no NIC MAC address reported"
		}
		out = append(out, sys)
	}
	if len(out) == 0 {
		return nil, errors.New("no systems")
	}
	return out, nil
}
