package bmc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ipmiTool drives Debian's ipmitool over IPMI 2.0 lanplus. The password goes
// through the environment (-E), never the command line, so it does not show
// in process listings or logs.
type ipmiTool struct{ t Target }

func (c *ipmiTool) run(ctx context.Context, args ...string) (string, error) {
	host, port := c.t.Address, "623"
	if h, p, err := net.SplitHostPort(c.t.Address); err == nil {
		host, port = h, p
	}
	argv := []string{"-I", "lanplus", "-H", host, "-p", port, "-U", c.t.User, "-E", "-N", "2", "-R", "2"}
	if c.t.CipherSuite > 0 {
		argv = append(argv, "-C", strconv.Itoa(c.t.CipherSuite))
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "ipmitool", argv...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+c.t.Password)
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("ipmi %s: %w", c.t.Address, ctx.Err())
		}
		return "", fmt.Errorf("ipmi %s: %s", c.t.Address, firstLine(text, err))
	}
	return text, nil
}

func firstLine(text string, err error) string {
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Unable to Get Channel Cipher Suites") {
			return l
		}
	}
	return err.Error()
}

func (c *ipmiTool) PowerState(ctx context.Context) (string, error) {
	out, err := c.run(ctx, "chassis", "power", "status")
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasSuffix(out, "is on"):
		return "on", nil
	case strings.HasSuffix(out, "is off"):
		return "off", nil
	}
	return "", fmt.Errorf("ipmi %s: unexpected answer %q", c.t.Address, out)
}

func (c *ipmiTool) Power(ctx context.Context, a Action) error {
	verb := map[Action]string{On: "on", Off: "off", Soft: "soft", Cycle: "cycle", Reset: "reset"}[a]
	if verb == "" {
		return fmt.Errorf("ipmi: unsupported action %s", a)
	}
	_, err := c.run(ctx, "chassis", "power", verb)
	return err
}

func (c *ipmiTool) BootPXEOnce(ctx context.Context) error {
	// Without "options=persistent" the override applies to the next boot only.
	_, err := c.run(ctx, "chassis", "bootdev", "pxe")
	return err
}

func (c *ipmiTool) Close() error { return nil }
