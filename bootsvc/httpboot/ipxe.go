package httpboot

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/imgctl/imgctl/bootsvc/inventory"
	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/images"
)

// overlayDir is where an artifact set carries the image's overlay templates
// (images/artifacts.OverlayDir; not imported to keep bootsvc off the build side).
const overlayDir = "overlay"

// handleIPXE renders the node's boot script. Unknown nodes get a script that
// waits and asks again, so adding a node to the inventory is enough to boot it.
func (s *Server) handleIPXE(w http.ResponseWriter, r *http.Request) {
	ip := sourceIP(r)
	mac := strings.ToLower(r.URL.Query().Get("mac"))
	nodes := s.deps.Nodes()
	var n *inventory.Node
	var ok bool
	if mac != "" {
		if _, err := net.ParseMAC(mac); err != nil {
			s.log.Warn("ipxe: bad mac", "mac", mac, "peer", ip)
			http.Error(w, "bad mac parameter", http.StatusBadRequest)
			return
		}
		n, ok = nodes.NodeByMAC(mac)
	} else {
		n, ok = nodes.NodeByIP(ip)
		if ok && len(n.MACs) > 0 {
			mac = n.MACs[0]
		}
	}
	if !ok {
		s.log.Warn("ipxe: unknown node, told to retry", "mac", mac, "peer", ip)
		s.writeScript(w, fmt.Sprintf(unknownScript, orUnknown(mac), s.pauseSecs(s.cfg.UnknownPause), s.pauseSecs(s.cfg.UnknownPause), s.selfURL(mac)))
		return
	}
	if n.IP != "" && n.IP != ip {
		// The token binds the inventory address; a node asking from another one
		// would be refused later anyway, so say it now.
		s.log.Warn("ipxe: node asked from an address other than its inventory IP", "node", n.Name, "peer", ip, "want", n.IP)
	}
	script, e, err := s.renderScript(n, mac, ip)
	if err != nil {
		s.log.Error("ipxe: cannot boot node", "node", n.Name, "peer", ip, "err", err)
		// The node only shows a console message; the record is what operators see.
		s.record(r, n.Name, nodestate.Report{State: nodestate.Failed, Reason: err.Error()})
		s.writeScript(w, fmt.Sprintf("#!ipxe\necho imgctl: cannot boot %s: %s\necho retrying in %ds\nsleep %d\nchain --autofree %s ||\nreboot\n",
			n.Name, scriptSafe(err.Error()), s.pauseSecs(s.cfg.UnknownPause), s.pauseSecs(s.cfg.UnknownPause), s.selfURL(mac)))
		return
	}
	s.writeScript(w, script)
	s.record(r, n.Name, nodestate.Report{State: nodestate.IPXE, Detail: "script served to " + ip, ImageDigest: e.Manifest.ImageDigest})
	s.log.Info("ipxe: script served", "node", n.Name, "mac", mac, "peer", ip, "image", e.Manifest.Name)
}

// renderScript builds a node's script from its inventory entry and current image.
func (s *Server) renderScript(n *inventory.Node, mac, ip string) (string, *images.Entry, error) {
	if n.Image == "" {
		return "", nil, fmt.Errorf("node %s has no image in the inventory", n.Name)
	}
	e, err := s.deps.Artifacts.Current(n.Image)
	if err != nil {
		return "", nil, err
	}
	tokIP := n.IP
	if tokIP == "" {
		tokIP = ip
	}
	token := s.tokens.Make(n.Name, mac, tokIP)
	base := strings.TrimRight(s.cfg.PublicURL, "/")
	m := e.Manifest
	art := func(kind string) (string, error) {
		a, ok := m.Artifacts[kind]
		if !ok {
			return "", fmt.Errorf("image %s@%s has no %s", m.Name, m.ImageDigest, kind)
		}
		return base + "/artifacts/" + url.PathEscape(m.Name) + "/" + images.DigestHex(m.ImageDigest) + "/" + url.PathEscape(a.File), nil
	}
	kernel, err := art(images.Kernel)
	if err != nil {
		return "", nil, err
	}
	initrd, err := art(images.Initramfs)
	if err != nil {
		return "", nil, err
	}
	manifest := base + "/artifacts/" + url.PathEscape(m.Name) + "/" + images.DigestHex(m.ImageDigest) + "/" + images.ManifestFile
	mode := n.Mode
	if mode == "" {
		mode = inventory.ModeLive
	}
	args := []string{
		"initrd=initrd", "initrd=overlay", // names the EFI stub loads; BIOS ignores them
		m.Cmdline, n.Cmdline,
		"BOOTIF=01-${netX/mac:hexhyp}",
		"systemd.hostname=" + n.Name,
		"ip=dhcp rd.neednet=1",
		"imgctl.url=" + base,
		"imgctl.node=" + n.Name,
		"imgctl.token=" + token,
		"imgctl.mode=" + string(mode),
		"imgctl.manifest=" + manifest,
	}
	if s.cfg.Console != "" {
		args = append(args, "console="+s.cfg.Console)
	}
	switch mode {
	case inventory.ModeLive:
		root, err := art(images.RootFS)
		if err != nil {
			return "", nil, err
		}
		args = append(args, "imgctl.root="+root)
		if n.Distribution != "" {
			args = append(args, "imgctl.dist="+n.Distribution)
		}
	case inventory.ModeNFS:
		if s.deps.NFS == nil {
			return "", nil, fmt.Errorf("node %s wants an NFS root but the NFS server is not configured", n.Name)
		}
		host, path, err := s.deps.NFS.Export(m.Name, m.ImageDigest)
		if err != nil {
			return "", nil, err
		}
		args = append(args, "imgctl.root=nfs://"+host+path, "root=nfs4:"+host+":"+path+":ro", "rootovl")
	default:
		return "", nil, fmt.Errorf("node %s: unknown mode %q", n.Name, mode)
	}
	data := ScriptData{
		Node: n.Name, MAC: mac, IP: ip, Image: m.Name, Digest: m.ImageDigest,
		Steps: []Step{
			{Command: "kernel", Label: "kernel", URL: kernel, Args: joinArgs(args...)},
			{Command: "initrd", Label: "initrd", URL: initrd},
			{Command: "initrd", Label: "overlay", URL: base + "/nodes/" + url.PathEscape(n.Name) + "/overlay.cpio.zst?token=" + token},
		},
		Retries:   s.cfg.Retries,
		PauseSecs: s.pauseSecs(s.cfg.RetryPause),
	}
	data.Cmdline = data.Steps[0].Args
	var buf bytes.Buffer
	if err := s.script.Execute(&buf, data); err != nil {
		return "", nil, fmt.Errorf("render script for %s: %w", n.Name, err)
	}
	return buf.String(), e, nil
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
