// Package bmc powers nodes on and off and sets one-time network boot through
// their baseboard management controllers: Redfish (gofish) or IPMI lanplus
// (Debian's ipmitool), chosen per node or detected. Many nodes are handled in
// parallel with a bounded fan-out; each gets its own result. Passwords are
// never logged or printed.
package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Action is a power operation.
type Action string

// Power operations accepted by imgctl power.
const (
	On     Action = "on"
	Off    Action = "off"   // hard off
	Soft   Action = "soft"  // ACPI shutdown
	Cycle  Action = "cycle" // off, then on
	Reset  Action = "reset" // hard reset
	Status Action = "status"
	PXE    Action = "pxe" // one-time network boot, then reset (or on)
)

// ParseAction checks a power operation name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case On, Off, Soft, Cycle, Reset, Status, PXE:
		return a, nil
	}
	return "", fmt.Errorf("unknown power action %q (want on, off, soft, cycle, reset, status or pxe)", s)
}

// Protocols.
const (
	Redfish = "redfish"
	IPMI    = "ipmi"
	Auto    = "auto"
)

// Target is one node's BMC.
type Target struct {
	Node     string
	Address  string // host[:port] or https://host[:port]
	Protocol string // redfish | ipmi | auto ("" = auto)
	User     string
	Password string `json:"-"`
	Insecure bool   // skip TLS verification (Redfish)
	// CipherSuite is the IPMI 2.0 cipher suite (e.g. 3 or 17); 0 lets ipmitool
	// negotiate, which costs round trips on BMCs that lack the lookup command.
	CipherSuite int
}

// String names the target without its password.
func (t Target) String() string { return fmt.Sprintf("%s (bmc %s)", t.Node, t.Address) }

// Controller drives one BMC. Implementations are used by one goroutine.
type Controller interface {
	// PowerState returns "on" or "off".
	PowerState(ctx context.Context) (string, error)
	// Power performs a power action (not Status or PXE).
	Power(ctx context.Context, a Action) error
	// BootPXEOnce makes the next boot a network boot.
	BootPXEOnce(ctx context.Context) error
	// Close ends the session.
	Close() error
}

// Dial connects to t's BMC with its protocol, or detects it: Redfish when
// /redfish/v1 answers, IPMI otherwise.
func Dial(ctx context.Context, t Target) (Controller, error) {
	if t.Address == "" {
		return nil, fmt.Errorf("%s: no BMC address in the inventory", t.Node)
	}
	proto := t.Protocol
	if proto == "" || proto == Auto {
		proto = IPMI
		if probeRedfish(ctx, t) {
			proto = Redfish
		}
	}
	switch proto {
	case Redfish:
		return dialRedfish(ctx, t)
	case IPMI:
		return &ipmiTool{t: t}, nil
	}
	return nil, fmt.Errorf("%s: BMC protocol %q: want redfish, ipmi or auto", t.Node, t.Protocol)
}

// probeRedfish reports whether the address serves a Redfish service root.
func probeRedfish(ctx context.Context, t Target) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, redfishEndpoint(t.Address)+"/redfish/v1/", nil)
	if err != nil {
		return false
	}
	resp, err := httpClient(t.Insecure).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// redfishEndpoint turns an inventory address into a base URL (https unless given).
func redfishEndpoint(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "https://" + addr
}

// Do performs action on one BMC and returns a short outcome (e.g. the power
// state after it).
func Do(ctx context.Context, t Target, a Action) (string, error) {
	c, err := Dial(ctx, t)
	if err != nil {
		return "", err
	}
	defer c.Close()
	switch a {
	case Status:
		return c.PowerState(ctx)
	case PXE:
		if err := c.BootPXEOnce(ctx); err != nil {
			return "", fmt.Errorf("set one-time PXE boot: %w", err)
		}
		state, err := c.PowerState(ctx)
		if err != nil {
			return "", err
		}
		next := Reset
		if state == "off" {
			next = On
		}
		if err := c.Power(ctx, next); err != nil {
			return "", err
		}
		return "pxe once, " + string(next), nil
	}
	if err := c.Power(ctx, a); err != nil {
		return "", err
	}
	return string(a) + " done", nil
}

// isTimeout reports whether err is a network timeout (for clearer messages).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
