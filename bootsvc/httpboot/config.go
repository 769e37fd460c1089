package httpboot

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// Config is the "http" section of the serve configuration.
type Config struct {
	Listen         string        `yaml:"listen" json:"listen"`                                       // host:port, e.g. 10.43.0.1:8080
	PublicURL      string        `yaml:"public_url" json:"public_url"`                               // base URL nodes use, e.g. http://10.43.0.1:8080
	TokenSecret    string        `yaml:"token_secret,omitempty" json:"token_secret,omitempty"`       // file with the HMAC secret (created 0600); default <state>/httpboot.secret
	AdminToken     string        `yaml:"admin_token,omitempty" json:"-"`                             // bearer token for /api/v1/admin; empty disables the admin API
	ScriptTemplate string        `yaml:"script_template,omitempty" json:"script_template,omitempty"` // file overriding the built-in iPXE script template
	OverlayCache   string        `yaml:"overlay_cache,omitempty" json:"overlay_cache,omitempty"`     // dir for rendered overlays; default <state>/cache/overlays
	RetryPause     time.Duration `yaml:"retry_pause,omitempty" json:"retry_pause,omitempty"`         // pause between download retries in the script; default 5s
	Retries        int           `yaml:"retries,omitempty" json:"retries,omitempty"`                 // download attempts before the script gives up; default 20
	UnknownPause   time.Duration `yaml:"unknown_pause,omitempty" json:"unknown_pause,omitempty"`     // how long an unknown node waits before asking again; default 30s
	Console        string        `yaml:"console,omitempty" json:"console,omitempty"`                 // optional console= argument, e.g. ttyS0,115200

	// CloudInit configures the NoCloud routes (cloudinit_config.go).
	CloudInit CloudInitConfig `yaml:"cloud_init,omitempty" json:"cloud_init,omitempty"`
}

// WithDefaults fills unset fields from the state directory.
func (c Config) WithDefaults(stateDir string) Config {
	if c.TokenSecret == "" {
		c.TokenSecret = stateDir + "/httpboot.secret"
	}
	if c.OverlayCache == "" {
		c.OverlayCache = stateDir + "/cache/overlays"
	}
	if c.RetryPause == 0 {
		c.RetryPause = 5 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 20
	}
	if c.UnknownPause == 0 {
		c.UnknownPause = 30 * time.Second
	}
	return c
}

// Validate returns every problem with the section, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("http.listen: empty (want host:port)"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("http.listen %q: %w", c.Listen, err))
	}
	if c.PublicURL == "" {
		errs = append(errs, errors.New("http.public_url: empty (want http://HOST:PORT reachable by nodes)"))
	} else if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		errs = append(errs, fmt.Errorf("http.public_url %q: want http://HOST[:PORT] (iPXE needs plain http, no path)", c.PublicURL))
	}
	if c.RetryPause < 0 {
		errs = append(errs, fmt.Errorf("http.retry_pause %s: negative", c.RetryPause))
	}
	if c.Retries < 0 {
		errs = append(errs, fmt.Errorf("http.retries %d: negative", c.Retries))
	}
	if c.UnknownPause < 0 {
		errs = append(errs, fmt.Errorf("http.unknown_pause %s: negative", c.UnknownPause))
	}
	if c.ScriptTemplate != "" {
		if _, err := os.Stat(c.ScriptTemplate); err != nil {
			errs = append(errs, fmt.Errorf("http.script_template: %w", err))
		}
	}
	errs = append(errs, c.CloudInit.validate())
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("http.admin_token: shorter than 16 characters"))
	}
	return errors.Join(errs...)
}
