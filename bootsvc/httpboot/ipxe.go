package httpboot

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/bootspec"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
)

// overlayDir is where an artifact set carries the image's overlay templates
// (images/artifacts.OverlayDir; not imported to keep bootsvc off the build side).
const overlayDir = "overlay"

// handleIPXE renders the node's boot script from the resolver's Spec.
// Unknown nodes get a script that waits and asks again, so adding a node to
// the inventory is enough to boot it.
func (s *Server) handleIPXE(w http.ResponseWriter, r *http.Request) {
	ip := sourceIP(r)
	mac := strings.ToLower(r.URL.Query().Get("mac"))
	c := bootspec.Client{}
	if a, err := netip.ParseAddr(ip); err == nil {
		c.IP = a.Unmap()
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			s.log.Warn("ipxe: bad mac", "mac", mac, "peer", ip)
			http.Error(w, "bad mac parameter", http.StatusBadRequest)
			return
		}
		c.MAC = hw
	}
	spec, err := s.deps.Boot.Resolve(r.Context(), c)
	var nodeErr *bootspec.Error
	switch {
	case errors.Is(err, bootspec.ErrNotManaged):
		s.log.Warn("ipxe: unknown node, told to retry", "mac", mac, "peer", ip)
		s.writeScript(w, fmt.Sprintf(unknownScript, orUnknown(mac), s.pauseSecs(s.cfg.UnknownPause), s.pauseSecs(s.cfg.UnknownPause), s.selfURL(mac)))
		return
	case errors.As(err, &nodeErr):
		s.log.Error("ipxe: cannot boot node", "node", nodeErr.Node, "peer", ip, "err", err)
		// The node only shows a console message; the record is what operators see.
		s.record(r, nodeErr.Node, nodestate.Report{State: nodestate.Failed, Reason: err.Error()})
		s.writeScript(w, fmt.Sprintf("#!ipxe\necho imgctl: cannot boot %s: %s\necho retrying in %ds\nsleep %d\nchain --autofree %s ||\nreboot\n",
			nodeErr.Node, scriptSafe(err.Error()), s.pauseSecs(s.cfg.UnknownPause), s.pauseSecs(s.cfg.UnknownPause), s.selfURL(mac)))
		return
	case err != nil:
		s.log.Error("ipxe: resolve failed", "mac", mac, "peer", ip, "err", err)
		http.Error(w, "boot service unavailable", http.StatusServiceUnavailable)
		return
	}
	n := spec.Node
	if n.IP != "" && n.IP != ip {
		// The token binds the inventory address; a node asking from another one
		// would be refused later anyway, so say it now.
		s.log.Warn("ipxe: node asked from an address other than its inventory IP", "node", n.Name, "peer", ip, "want", n.IP)
	}
	script, err := s.renderScript(spec, ip)
	if err != nil {
		s.log.Error("ipxe: cannot render script", "node", n.Name, "err", err)
		http.Error(w, "script template failed", http.StatusInternalServerError)
		return
	}
	s.writeScript(w, script)
	s.record(r, n.Name, nodestate.Report{State: nodestate.IPXE, Detail: "script served to " + ip, ImageDigest: spec.Image.Manifest.ImageDigest})
	s.log.Info("ipxe: script served", "node", n.Name, "mac", spec.MAC, "peer", ip, "image", spec.Image.Manifest.Name)
}

// renderScript renders a Spec through the script template.
func (s *Server) renderScript(spec bootspec.Spec, ip string) (string, error) {
	m := spec.Image.Manifest
	data := ScriptData{
		Node: spec.Node.Name, MAC: spec.MAC, IP: ip, Image: m.Name, Digest: m.ImageDigest,
		Cmdline:   spec.Cmdline(),
		Retries:   s.cfg.Retries,
		PauseSecs: s.pauseSecs(s.cfg.RetryPause),
	}
	data.Steps = append(data.Steps, Step{Command: "kernel", Label: "kernel", URL: spec.Kernel, Args: data.Cmdline})
	for _, rd := range spec.Initrds {
		data.Steps = append(data.Steps, Step{Command: "initrd", Label: rd.Name, URL: rd.URL})
	}
	var buf bytes.Buffer
	if err := s.script.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("render script for %s: %w", spec.Node.Name, err)
	}
	return buf.String(), nil
}

func (s *Server) writeScript(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(body))
}

func (s *Server) selfURL(mac string) string {
	u := strings.TrimRight(s.cfg.PublicURL, "/") + "/ipxe"
	if mac != "" {
		u += "?mac=" + url.QueryEscape(mac)
	} else {
		u += "?mac=${netX/mac}"
	}
	return u
}

func (s *Server) pauseSecs(d time.Duration) int {
	if n := int(d.Seconds()); n > 0 {
		return n
	}
	return 1
}

func orUnknown(mac string) string {
	if mac == "" {
		return "unknown MAC"
	}
	return mac
}

// scriptSafe keeps an error message from breaking out of an iPXE echo line.
func scriptSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '$' || r == '#' {
			return ' '
		}
		return r
	}, s)
}
