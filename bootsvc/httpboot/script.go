package httpboot

import (
	"fmt"
	"os"
	"text/template"
)

// Step is one file the iPXE script fetches.
type Step struct {
	Command string // kernel | initrd
	Label   string // iPXE label and image name, e.g. kernel, initrd, overlay
	URL     string
	Args    string // kernel command line (kernel step only)
}

// ScriptData is what the iPXE script template sees.
type ScriptData struct {
	Node      string
	MAC       string
	IP        string
	Image     string
	Digest    string
	Steps     []Step // kernel first, then the initrds
	Cmdline   string
	Retries   int // attempts per download before giving up
	PauseSecs int // seconds between attempts
}

// defaultScript boots a node. Every download retries with a pause, a bounded
// number of times, so a busy server delays a node instead of stranding it;
// after the last attempt the script says why and reboots.
const defaultScript = `#!ipxe
# imgctl boot script for {{ .Node }} ({{ .Image }}@{{ .Digest }})
echo imgctl: booting {{ .Node }} ({{ .MAC }}) with {{ .Image }}
{{- range .Steps }}
set tries:int32 0
:{{ .Label }}
{{ .Command }} --name {{ .Label }} {{ .URL }}{{ if .Args }} {{ .Args }}{{ end }} && goto {{ .Label }}_ok ||
inc tries
iseq ${tries} {{ $.Retries }} && goto fail ||
echo imgctl: {{ .Label }} download failed (attempt ${tries} of {{ $.Retries }}), retrying in {{ $.PauseSecs }}s
sleep {{ $.PauseSecs }}
goto {{ .Label }}
:{{ .Label }}_ok
{{- end }}
boot ||
:fail
echo imgctl: boot of {{ .Node }} failed after {{ .Retries }} attempts per file (server unreachable or busy); rebooting in 30s
sleep 30
reboot
`

// unknownScript answers a MAC the inventory doesn't know: say so, wait, ask again.
const unknownScript = `#!ipxe
echo imgctl: this machine (%s) is not in the inventory; asking again in %ds
sleep %d
chain --autofree %s ||
reboot
`

// loadTemplate returns the override template file, or the built-in one.
func loadTemplate(path string) (*template.Template, error) {
	text := defaultScript
	name := "ipxe"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("script template: %w", err)
		}
		text, name = string(b), path
	}
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("script template: %w", err)
	}
	return t, nil
}
