// Package nfs serves NFS-root nodes: it loop-mounts each needed image's root
// (squashfs or erofs from the artifact store) read-only under
// <state>/mnt/<name>/<digest> and exports those mounts through an
// nfs-ganesha child process it configures, starts and stops itself. What is
// exported follows the inventory (nodes with mode nfs and their images); no
// exports file is written by hand.
package nfs

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Config is the "nfs" section of the serve configuration.
type Config struct {
	Enabled  bool   `yaml:"enabled" json:"enabled"`
	Address  string `yaml:"address" json:"address"`                         // IP of the boot interface ganesha binds and nodes mount from
	Port     int    `yaml:"port,omitempty" json:"port,omitempty"`           // default 2049
	Pseudo   string `yaml:"pseudo,omitempty" json:"pseudo,omitempty"`       // NFSv4 pseudo root of the exports; default /imgctl
	Ganesha  string `yaml:"ganesha,omitempty" json:"ganesha,omitempty"`     // ganesha.nfsd binary; default from PATH
	LogLevel string `yaml:"log_level,omitempty" json:"log_level,omitempty"` // ganesha log level; default NIV_EVENT
}

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = 2049
	}
	if c.Pseudo == "" {
		c.Pseudo = "/imgctl"
	}
	if c.Ganesha == "" {
		c.Ganesha = "ganesha.nfsd"
	}
	if c.LogLevel == "" {
		c.LogLevel = "NIV_EVENT"
	}
	return c
}

// Validate returns every problem with the section, each naming its field.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if ip := net.ParseIP(c.Address); ip == nil || ip.To4() == nil || ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("nfs.address %q: want the boot interface's IPv4 address", c.Address))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("nfs.port %d: out of range", c.Port))
	}
	if c.Pseudo != "" && (!strings.HasPrefix(c.Pseudo, "/") || c.Pseudo == "/" || strings.ContainsAny(c.Pseudo, " \t\n\";{}")) {
		errs = append(errs, fmt.Errorf("nfs.pseudo %q: want an absolute path like /imgctl", c.Pseudo))
	}
	switch c.LogLevel {
	case "", "NIV_NULL", "NIV_FATAL", "NIV_MAJ", "NIV_CRIT", "NIV_WARN", "NIV_EVENT", "NIV_INFO", "NIV_DEBUG", "NIV_MID_DEBUG", "NIV_FULL_DEBUG":
	default:
		errs = append(errs, fmt.Errorf("nfs.log_level %q: want a ganesha level such as NIV_EVENT", c.LogLevel))
	}
	return errors.Join(errs...)
}
