// Package config is `imgctl serve`'s configuration: one YAML file decoded
// strictly into typed sections, one per server, over defaults from Default;
// then IMGCTL_* environment variables, then command-line settings
// (precedence flags > environment > file). Resolve fills the values left to
// discovery (boot interface and address) and Validate reports every problem
// at once. Each server is handed only its own section.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/imgctl/imgctl/bootsvc/dhcp"
	"github.com/imgctl/imgctl/bootsvc/dist"
	"github.com/imgctl/imgctl/bootsvc/httpboot"
	"github.com/imgctl/imgctl/bootsvc/nfs"
	"github.com/imgctl/imgctl/bootsvc/ra"
	"github.com/imgctl/imgctl/bootsvc/store/pgstore"
	"github.com/imgctl/imgctl/bootsvc/tftp"
)

// Config is the whole serve configuration. Adding a server is one field
// holding that package's Config under its section name.
type Config struct {
	// Interface is the boot network interface; "" = the first interface with
	// a non-loopback IPv4 address.
	Interface string `yaml:"interface,omitempty" json:"interface,omitempty"`
	// Address is the boot server's IPv4 address on it; "" = the interface's first.
	Address string      `yaml:"address,omitempty" json:"address,omitempty"`
	DHCP    dhcp.Config `yaml:"dhcp" json:"dhcp"`
	TFTP    tftp.Config `yaml:"tftp" json:"tftp"`
	HTTP    HTTP        `yaml:"http" json:"http"`
	NFS     nfs.Config  `yaml:"nfs" json:"nfs"`
	RA      ra.Config   `yaml:"ra" json:"ra"`
	// Dist is the tree coordinator's scheduling; it runs on the HTTP server.
	Dist  dist.Config `yaml:"dist,omitempty" json:"dist,omitempty"`
	Store Store       `yaml:"store,omitempty" json:"store,omitempty"`
}

// Store is the "store" section: where nodes and boot states live.
type Store struct {
	// URL is postgres://… for several boot servers on one database; ""
	// is the file store in the state directory. The global --store flag
	// overrides it.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
}

// HTTP is the "http" section: the HTTP boot server's own settings plus the
// switch every section has.
type HTTP struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// ViewerToken lets its holder see the dashboard (/ui) and nothing else;
	// the admin token sees it too. See ui.go.
	ViewerToken     string `yaml:"viewer_token,omitempty" json:"-"`
	httpboot.Config `yaml:",inline"`
}

// Default is the configuration `imgctl serve` runs with when given none:
// DHCP (inventory MACs only), TFTP and HTTP on the auto-detected boot
// interface; NFS and router advertisements off.
func Default() Config {
	d := dhcp.Defaults()
	d.Enabled = true
	t := tftp.Defaults()
	t.Enabled = true
	return Config{
		DHCP: d,
		TFTP: t,
		HTTP: HTTP{Enabled: true, Config: httpboot.Config{Listen: ":8080"}},
		NFS:  nfs.Config{},
		RA:   ra.Defaults(),
	}
}

// Decode reads YAML from r over cfg. Unknown fields are errors; every error
// names name and the line.
func Decode(name string, r io.Reader, cfg *Config) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.TrimSpace(strings.TrimPrefix(msg, "unmarshal errors:"))
		msg = strings.ReplaceAll(msg, "\n  line ", "\n"+name+":")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			return fmt.Errorf("%s:%s", name, rest)
		}
		return fmt.Errorf("%s: %s", name, msg)
	}
	return nil
}

// Load builds the effective configuration: defaults, then the file at path
// ("" = none), then environ's IMGCTL_* variables, then sets ("key=value",
// dotted YAML keys such as dhcp.unknown=discovery). It does not resolve or
// validate.
func Load(path string, environ []string, sets []string) (Config, error) {
	cfg := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := Decode(path, f, &cfg); err != nil {
			return cfg, err
		}
	}
	var errs []error
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		key, ok := envKey(k)
		if !ok {
			continue // IMGCTL_STATE and friends belong to the CLI, not here
		}
		if err := Set(&cfg, key, v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", k, err))
		}
	}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--set %q: want key=value", kv))
			continue
		}
		if err := Set(&cfg, k, v); err != nil {
			errs = append(errs, fmt.Errorf("--set %s: %w", k, err))
		}
	}
	return cfg, errors.Join(errs...)
}

// Validate checks every enabled section and returns all problems at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store.URL != "" && !pgstore.IsURL(c.Store.URL) {
		errs = append(errs, fmt.Errorf("store.url %q: want postgres://USER[:PASSWORD]@HOST[:PORT]/DB, or nothing for the file store", pgstore.MaskURL(c.Store.URL)))
	}
	if c.DHCP.Enabled {
		errs = append(errs, c.DHCP.Validate())
	}
	if c.TFTP.Enabled {
		errs = append(errs, c.TFTP.Validate())
	}
	if c.HTTP.Enabled {
		errs = append(errs, c.HTTP.Config.Validate(), c.HTTP.validateViewer())
	}
	if c.NFS.Enabled {
		errs = append(errs, c.NFS.Validate())
	}
	errs = append(errs, c.Dist.Validate())
	if !c.DHCP.Enabled && !c.TFTP.Enabled && !c.HTTP.Enabled && !c.NFS.Enabled {
		errs = append(errs, errors.New("config: every server is disabled"))
	}
	return errors.Join(errs...)
}

// Redacted returns c with secrets replaced, for printing.
func (c Config) Redacted() Config {
	if c.HTTP.AdminToken != "" {
		c.HTTP.AdminToken = "<redacted>"
	}
	if c.HTTP.ViewerToken != "" {
		c.HTTP.ViewerToken = "<redacted>"
	}
	c.Store.URL = pgstore.MaskURL(c.Store.URL)
	return c
}
